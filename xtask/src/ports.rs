//! Host ports: is one free, and if not, which process holds it (read from /proc, as `ss -p` does).

use std::{fs, net::TcpListener};

use anyhow::{Result, bail};

/// Is something listening on 127.0.0.1:port (or on all interfaces)?
pub fn port_taken(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_err() || TcpListener::bind(("127.0.0.1", port)).is_err()
}

pub fn check_free(ports: &[(&str, u16)]) -> Result<()> {
    let mut problems = Vec::new();
    for (var, port) in ports {
        if port_taken(*port) {
            problems.push(format!(
                "{var}={port}: the port is held by {}.\n  fix: stop it, or set {var} to a free port in .env",
                holder(*port)
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// "pid 4242 (node)", "docker-proxy pid 77 for container x", or what to run to find out.
pub fn holder(port: u16) -> String {
    let mut inodes = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(f) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    let found = inodes.iter().find_map(|i| pid_of_socket(*i));
    match found {
        Some((pid, comm)) if comm == "docker-proxy" => {
            let name = crate::docker::publisher_of(port);
            match name {
                Some(n) => format!("pid {pid} (docker-proxy) for container {n}"),
                None => format!("pid {pid} (docker-proxy), a published container port"),
            }
        }
        Some((pid, comm)) => format!("pid {pid} ({comm})"),
        None => format!("a process this user cannot see (try `sudo ss -ltnp 'sport = :{port}'`)"),
    }
}

/// Socket inodes listening (state 0A) on `port` in a /proc/net/tcp{,6} table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit_once(':')?.1, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

fn pid_of_socket(inode: u64) -> Option<(u32, String)> {
    let target = format!("socket:[{inode}]");
    for p in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                let comm = fs::read_to_string(p.path().join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Some((pid, comm));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_listeners() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:0BB8 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 515151 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 777 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            listening_inodes(table, 3000),
            vec![424242],
            "established connections are not listeners"
        );
        assert_eq!(listening_inodes(table, 5432), vec![777]);
        assert!(listening_inodes(table, 6379).is_empty());
    }

    #[test]
    fn a_held_port_names_its_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = check_free(&[("APP_PORT", port)]).unwrap_err().to_string();
        assert!(err.contains(&format!("APP_PORT={port}")), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(l);
        check_free(&[("APP_PORT", port)]).unwrap();
    }
}
