//! What the app's own build says it serves, read from the runner's `.next` manifests, so that
//! `verify --prod` checks the user's app and not the demo: its routes (app router and pages
//! router), its ISR routes with their `revalidate`, its image optimizer configuration and the
//! images it ships.

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::Shell;

use crate::docker;

/// A route of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `/blog/[slug]`, `/api/health`: the URL pattern.
    pub path: String,
    pub kind: RouteKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Page,
    /// A route handler (`route.ts`), a metadata route (`/robots.txt`) or a pages-router API route.
    Handler,
}

impl RouteKind {
    pub fn word(self) -> &'static str {
        match self {
            RouteKind::Page => "page",
            RouteKind::Handler => "route handler",
        }
    }
}

impl Route {
    /// Needs values for its segments (`[slug]`, `[...rest]`): no URL to request without them.
    pub fn dynamic(&self) -> bool {
        self.path.contains('[')
    }
    /// Next.js's own (`/_not-found`, `/_global-error`, `/_app`, `/404`): not the app's routes.
    fn internal(&self) -> bool {
        self.path.starts_with("/_") || matches!(self.path.as_str(), "/404" | "/500")
    }
}

/// The image optimizer as the build configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Every width the optimizer accepts (`imageSizes` and `deviceSizes`), sorted: never empty.
    pub widths: Vec<u64>,
    pub quality: u64,
    pub svg_allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildOutput {
    pub routes: Vec<Route>,
    /// Routes regenerated in the background, with their `revalidate` in seconds.
    pub isr: Vec<(String, u64)>,
    /// Every page rendered at build time (static and ISR): served from the cache, without the
    /// app's database.
    pub prerendered: Vec<String>,
    /// The build's preview id: a request carrying it as `x-prerender-revalidate` regenerates a
    /// page on demand, the way `revalidatePath` does.
    pub preview_id: Option<String>,
    /// `None` when the optimizer is off (`unoptimized`, a custom loader).
    pub images: Option<Images>,
    /// URL paths of the images the app ships (`public/`, imported images).
    pub image_files: Vec<String>,
    /// `.next/BUILD_ID`.
    pub build_id: String,
    /// The server-actions key the build kept (its server-reference manifest), if any.
    pub actions_key: Option<String>,
    /// The ids of its server actions (the same manifest), sorted.
    pub action_ids: Vec<String>,
}

/// The runner's paths, relative to /app.
const MANIFESTS: [&str; 4] = [
    ".next/app-path-routes-manifest.json",
    ".next/server/pages-manifest.json",
    ".next/prerender-manifest.json",
    ".next/required-server-files.json",
];
const SEP: &str = "@@axion-manifest@@";
const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "avif", "gif", "svg"];

/// What both readers run in /app: the manifests, the shipped files, BUILD_ID and the
/// server-reference manifest, separated by SEP.
fn read_script() -> String {
    let mut script = String::from("cd /app && ");
    for m in MANIFESTS {
        script.push_str(&format!("cat {m} 2>/dev/null; echo {SEP}; "));
    }
    script.push_str("find public .next/static/media -type f 2>/dev/null; ");
    script.push_str(&format!(
        "echo {SEP}; cat .next/BUILD_ID 2>/dev/null; echo {SEP}; "
    ));
    script.push_str("cat .next/server/server-reference-manifest.json 2>/dev/null");
    script
}

impl BuildOutput {
    /// Reads the manifests and the list of shipped files from the running app container.
    pub fn read(sh: &Shell, container: &str) -> Result<BuildOutput> {
        let out = docker::exec(sh, container, &["sh", "-c", &read_script()])
            .context("reading the build's manifests from the app container")?;
        BuildOutput::from_listing(
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// The same, from an image (a throw-away container of it, without network).
    pub fn of_image(sh: &Shell, image: &str) -> Result<BuildOutput> {
        let text = docker::inspect_image_with(sh, image, &read_script())
            .with_context(|| format!("reading the build's manifests from {image}"))?;
        BuildOutput::from_listing(&text, "")
    }

    fn from_listing(text: &str, stderr: &str) -> Result<BuildOutput> {
        let parts: Vec<&str> = text.split(SEP).collect();
        anyhow::ensure!(
            parts.len() == MANIFESTS.len() + 3,
            "the app's /app holds no Next.js build output: {}",
            stderr.trim()
        );
        let mut build = BuildOutput::parse(parts[0], parts[1], parts[2], parts[3], parts[4])?;
        build.build_id = parts[5].trim().to_string();
        let actions: Value = serde_json::from_str(parts[6].trim()).unwrap_or(Value::Null);
        build.actions_key = actions["encryptionKey"]
            .as_str()
            .map(String::from)
            .filter(|k| !k.is_empty());
        build.action_ids = ["node", "edge"]
            .iter()
            .filter_map(|k| actions[k].as_object())
            .flat_map(|o| o.keys().cloned())
            .collect();
        build.action_ids.sort();
        Ok(build)
    }

    /// From the manifests' text (an empty text: that manifest is absent) and a listing of
    /// `public/…` and `.next/static/media/…` files.
    pub fn parse(
        app_paths: &str,
        pages: &str,
        prerender: &str,
        server_files: &str,
        files: &str,
    ) -> Result<BuildOutput> {
        let json = |name: &str, text: &str| -> Result<Value> {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(text).with_context(|| format!("parsing {name}"))
        };
        let app_paths = json(MANIFESTS[0], app_paths)?;
        let pages = json(MANIFESTS[1], pages)?;
        let prerender = json(MANIFESTS[2], prerender)?;
        let config = json(MANIFESTS[3], server_files)?;
        anyhow::ensure!(
            !app_paths.is_null() || !pages.is_null(),
            "the build has no route manifest ({} or {})",
            MANIFESTS[0],
            MANIFESTS[1]
        );
        let images = optimizer(&config["config"]["images"]);
        let svg = images.as_ref().is_some_and(|i| i.svg_allowed);
        Ok(BuildOutput {
            routes: routes(&app_paths, &pages),
            isr: isr_routes(&prerender),
            prerendered: prerendered(&prerender),
            preview_id: prerender["preview"]["previewModeId"]
                .as_str()
                .map(String::from),
            images,
            image_files: image_files(files, svg),
            build_id: String::new(),
            actions_key: None,
            action_ids: Vec::new(),
        })
    }

    /// Every `/_next/image` URL the optimizer would make of the images the app ships: each
    /// image at each width (empty when the optimizer is off).
    pub fn image_variants(&self) -> Vec<String> {
        let Some(i) = &self.images else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for file in &self.image_files {
            for w in &i.widths {
                out.push(format!(
                    "/_next/image?url={}&w={w}&q={}",
                    crate::util::percent_encode(file),
                    i.quality
                ));
            }
        }
        out
    }

    /// A `/_next/image` URL for the first image the app ships at the smallest width, when the
    /// optimizer is on.
    pub fn image_probe(&self) -> Option<String> {
        self.image_variants().into_iter().next()
    }
}

/// App router (`/blog/[slug]/page` → `/blog/[slug]`) and pages router routes, Next's own left
/// out, each once, sorted.
fn routes(app_paths: &Value, pages: &Value) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for (entry, path) in app_paths.as_object().into_iter().flatten() {
        let kind = if entry.ends_with("/route") {
            RouteKind::Handler
        } else {
            RouteKind::Page
        };
        if let Some(path) = path.as_str() {
            out.push(Route {
                path: path.into(),
                kind,
            });
        }
    }
    for path in pages.as_object().into_iter().flatten().map(|(k, _)| k) {
        let kind = if path == "/api" || path.starts_with("/api/") {
            RouteKind::Handler
        } else {
            RouteKind::Page
        };
        out.push(Route {
            path: path.clone(),
            kind,
        });
    }
    out.retain(|r| !r.internal());
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// Every prerendered route, Next.js's own and the `.rsc` payloads left out.
fn prerendered(prerender: &Value) -> Vec<String> {
    let mut out: Vec<String> = prerender["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, _)| path.clone())
        .filter(|path| !path.starts_with("/_") && !path.ends_with(".rsc"))
        .collect();
    out.sort();
    out
}

/// Prerendered routes with a numeric `initialRevalidateSeconds` (false: static for good).
fn isr_routes(prerender: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = prerender["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, _)| !path.starts_with("/_"))
        .filter_map(|(path, r)| {
            let secs = r["initialRevalidateSeconds"].as_u64()?;
            (secs > 0).then(|| (path.clone(), secs))
        })
        .collect();
    out.sort();
    out
}

fn optimizer(images: &Value) -> Option<Images> {
    if images.is_null()
        || images["unoptimized"].as_bool() == Some(true)
        || images["loader"].as_str().is_some_and(|l| l != "default")
    {
        return None;
    }
    let mut widths: Vec<u64> = ["imageSizes", "deviceSizes"]
        .iter()
        .flat_map(|k| images[k].as_array().into_iter().flatten())
        .filter_map(Value::as_u64)
        .collect();
    widths.sort_unstable();
    widths.dedup();
    if widths.is_empty() {
        return None;
    }
    Some(Images {
        widths,
        quality: images["qualities"][0].as_u64().unwrap_or(75),
        svg_allowed: images["dangerouslyAllowSVG"].as_bool() == Some(true),
    })
}

/// `public/a/logo.png` → `/a/logo.png`; `.next/static/media/x.png` → `/_next/static/media/x.png`.
/// SVG only when the optimizer may serve it.
fn image_files(listing: &str, svg: bool) -> Vec<String> {
    let mut out: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|f| {
            let ext = f.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&ext.as_str()) && (svg || ext != "svg")
        })
        .filter_map(|f| {
            if let Some(p) = f.strip_prefix("public/") {
                Some(format!("/{p}"))
            } else {
                f.strip_prefix(".next/").map(|p| format!("/_next/{p}"))
            }
        })
        .collect();
    // The app's own files first: public/ is what a user put there on purpose.
    out.sort_by_key(|f| (f.starts_with("/_next/"), f.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_PATHS: &str = r#"{"/_not-found/page":"/_not-found","/api/items/route":"/api/items",
        "/dashboard/page":"/dashboard","/blog/[slug]/page":"/blog/[slug]","/robots.txt/route":"/robots.txt",
        "/(marketing)/page":"/"}"#;
    const PRERENDER: &str = r#"{"version":4,"routes":{
        "/":{"initialRevalidateSeconds":false},
        "/news":{"initialRevalidateSeconds":5,"initialExpireSeconds":31536000},
        "/_global-error":{"initialRevalidateSeconds":false}},
        "preview":{"previewModeId":"abc123"}}"#;
    const CONFIG: &str = r#"{"config":{"images":{"deviceSizes":[640,750],"imageSizes":[32,48],
        "qualities":[80],"loader":"default","unoptimized":false}}}"#;

    #[test]
    fn routes_isr_and_images_come_from_the_manifests() {
        let b = BuildOutput::parse(
            APP_PATHS,
            "",
            PRERENDER,
            CONFIG,
            "public/robots.txt\npublic/img/Hero Shot.PNG\n.next/static/media/avatar.1a2b.png\npublic/icon.svg\n",
        )
        .unwrap();
        let paths: Vec<(&str, bool, &str)> = b
            .routes
            .iter()
            .map(|r| (r.path.as_str(), r.dynamic(), r.kind.word()))
            .collect();
        assert_eq!(
            paths,
            [
                ("/", false, "page"),
                ("/api/items", false, "route handler"),
                ("/blog/[slug]", true, "page"),
                ("/dashboard", false, "page"),
                ("/robots.txt", false, "route handler"),
            ]
        );
        assert_eq!(b.isr, [("/news".to_string(), 5)]);
        // Static and ISR alike, Next.js's own left out.
        assert_eq!(b.prerendered, ["/", "/news"]);
        assert_eq!(b.preview_id.as_deref(), Some("abc123"));
        assert_eq!(
            b.image_files,
            ["/img/Hero Shot.PNG", "/_next/static/media/avatar.1a2b.png"]
        );
        assert_eq!(
            b.image_probe().as_deref(),
            Some("/_next/image?url=%2Fimg%2FHero%20Shot.PNG&w=32&q=80")
        );
        // Each shipped image at each width the optimizer accepts, sorted.
        let variants = b.image_variants();
        assert_eq!(variants.len(), 2 * 4);
        assert_eq!(
            variants[..4],
            [32, 48, 640, 750]
                .map(|w| format!("/_next/image?url=%2Fimg%2FHero%20Shot.PNG&w={w}&q=80"))
        );
    }

    #[test]
    fn pages_router_routes_count_too() {
        let pages = r#"{"/_app":"pages/_app.js","/_document":"pages/_document.js","/404":"pages/404.html",
            "/about":"pages/about.js","/api/hello":"pages/api/hello.js"}"#;
        let b = BuildOutput::parse("", pages, "", "", "").unwrap();
        let paths: Vec<(&str, &str)> = b
            .routes
            .iter()
            .map(|r| (r.path.as_str(), r.kind.word()))
            .collect();
        assert_eq!(paths, [("/about", "page"), ("/api/hello", "route handler")]);
        assert!(b.isr.is_empty());
    }

    #[test]
    fn no_image_or_no_optimizer_means_no_probe() {
        let none = BuildOutput::parse(APP_PATHS, "", PRERENDER, CONFIG, "public/robots.txt\n");
        assert_eq!(none.unwrap().image_probe(), None);
        let off = CONFIG.replace("\"unoptimized\":false", "\"unoptimized\":true");
        let b = BuildOutput::parse(APP_PATHS, "", PRERENDER, &off, "public/a.png\n").unwrap();
        assert_eq!(b.image_probe(), None);
        let svg_only = BuildOutput::parse(APP_PATHS, "", PRERENDER, CONFIG, "public/a.svg\n");
        assert_eq!(svg_only.unwrap().image_probe(), None);
    }

    #[test]
    fn a_build_without_manifests_is_named() {
        let e = BuildOutput::parse("", "", "", "", "").unwrap_err();
        assert!(e.to_string().contains("no route manifest"), "{e}");
    }
}
