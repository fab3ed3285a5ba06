//! Compose's merged model of the prod + swarm files turned into what `docker stack deploy`
//! accepts and means.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::standin::fnv1a;

/// Compose's merged model turned into a `docker stack deploy` file:
/// - what only compose uses goes (`name`, `build`, `depends_on`, `restart`: swarm restarts by
///   `deploy.restart_policy`; `security_opt`: Engine 26 services have no no-new-privileges);
/// - `tmpfs:` (which stack deploy would silently drop, leaving a read-only /tmp) becomes tmpfs
///   mounts;
/// - numbers compose prints as strings become numbers again, nulls go;
/// - secrets and configs are named after their content (`<stack>_<key>-<hash>`): swarm's are
///   immutable, so a changed file must be a new object, and an unchanged one is reused;
///   secrets no service uses (the build's extra_ca) are not created.
///
/// `read` gives a secret or config file's bytes.
pub fn to_stack(
    mut model: Value,
    stack: &str,
    read: impl Fn(&str, &str) -> Result<Vec<u8>>,
) -> Result<Value> {
    let top = model
        .as_object_mut()
        .context("compose config printed no object")?;
    top.remove("name");
    let mut used = Vec::new();
    let services = top
        .get_mut("services")
        .and_then(Value::as_object_mut)
        .context("compose config has no services")?;
    for (name, s) in services.iter_mut() {
        let s = s
            .as_object_mut()
            .with_context(|| format!("service {name}"))?;
        service(s).with_context(|| format!("service {name}"))?;
        for kind in ["secrets", "configs"] {
            for r in s.get(kind).and_then(Value::as_array).into_iter().flatten() {
                let source = r.get("source").or(Some(r)).and_then(Value::as_str);
                if let Some(source) = source {
                    used.push((kind, source.to_string()));
                }
            }
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(objs) = top.get_mut(kind).and_then(Value::as_object_mut) {
            objs.retain(|k, _| used.iter().any(|(u, s)| *u == kind && s == k));
            name_by_content(objs, kind, stack, &read)?;
        }
    }
    for kind in ["networks", "volumes"] {
        for obj in top
            .get_mut(kind)
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if let Some(o) = obj.as_object_mut() {
                o.remove("name");
            }
        }
    }
    Ok(model)
}

/// One service made deployable: compose-only keys and nulls go, tmpfs becomes mounts, numbers
/// compose prints as strings are numbers again, a network without options is `{}`.
fn service(s: &mut Map<String, Value>) -> Result<()> {
    for k in ["build", "depends_on", "restart", "security_opt"] {
        s.remove(k);
    }
    s.retain(|_, v| !v.is_null());
    if let Some(tmpfs) = s.remove("tmpfs") {
        let mounts = tmpfs_mounts(&tmpfs).context("tmpfs")?;
        let vols = s.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = vols.as_array_mut() {
            v.extend(mounts);
        }
    }
    for v in s
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(size) = v.pointer_mut("/tmpfs/size") {
            number_in_place(size);
        }
    }
    for p in s
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for k in ["published", "target"] {
            if let Some(n) = p.get_mut(k) {
                number_in_place(n);
            }
        }
    }
    if let Some(nets) = s.get_mut("networks").and_then(Value::as_object_mut) {
        for v in nets.values_mut() {
            if v.is_null() {
                *v = json!({});
            }
        }
    }
    Ok(())
}

/// Secrets and configs named after their content (`<stack>_<key>-<hash>`): swarm's are
/// immutable, so a changed file must be a new object, and an unchanged one is reused.
fn name_by_content(
    objs: &mut Map<String, Value>,
    kind: &str,
    stack: &str,
    read: &impl Fn(&str, &str) -> Result<Vec<u8>>,
) -> Result<()> {
    for (key, obj) in objs.iter_mut() {
        let file = obj
            .get("file")
            .and_then(Value::as_str)
            .with_context(|| format!("{kind}.{key} has no file"))?
            .to_string();
        let bytes = read(kind, &file).with_context(|| format!("reading {kind}.{key} ({file})"))?;
        let name = format!("{stack}_{key}-{:08x}", fnv1a(&bytes) as u32);
        *obj = json!({ "name": name, "file": file });
    }
    Ok(())
}

/// Every overlay network encrypted (IPsec ESP with AES-GCM between nodes): `--encrypted-overlays`.
pub fn encrypt_overlays(file: &mut Value) {
    for net in file
        .get_mut("networks")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        if net["driver"] == "overlay" {
            net["driver_opts"]["encrypted"] = json!("");
        }
    }
}

fn number_in_place(v: &mut Value) {
    if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok()) {
        *v = json!(n);
    }
}

/// `["/tmp:size=64m"]` as tmpfs mounts.
fn tmpfs_mounts(list: &Value) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for entry in list.as_array().into_iter().flatten() {
        let entry = entry.as_str().context("a tmpfs entry is not a string")?;
        let (target, opts) = entry.split_once(':').unwrap_or((entry, ""));
        let mut tmpfs = Map::new();
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", v)) => {
                    tmpfs.insert("size".into(), json!(bytes(v)?));
                }
                Some(("mode", v)) => {
                    let mode = u32::from_str_radix(v, 8)
                        .with_context(|| format!("mode {v} is not octal"))?;
                    tmpfs.insert("mode".into(), json!(mode));
                }
                _ => bail!("`{opt}` in `{entry}`: stack deploy takes only size= and mode="),
            }
        }
        out.push(json!({ "type": "tmpfs", "target": target, "tmpfs": tmpfs }));
    }
    Ok(out)
}

/// `64m` -> 67108864.
pub(super) fn bytes(v: &str) -> Result<u64> {
    let v = v.trim().to_ascii_lowercase();
    let (num, mult) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m') => (&v[..v.len() - 1], 1 << 20),
        Some('g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v.as_str(), 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{v}` is not a size"))?;
    Ok(n * mult)
}
