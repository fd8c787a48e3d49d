//! The deployment files in `deploy/` against the binary they deploy. The Dockerfile, the compose
//! file with its HAProxy configuration, and the Kubernetes manifests agree with the container
//! configuration (`deploy/tsa.container.toml`) on the port; probe `/healthz` on it; set only
//! environment variables that `tsa serve --help` says it reads; run a command line that `tsa`
//! accepts; mount every file the configuration names, at the path it names it by; and give
//! tsa's stop after SIGTERM the time it can take. The ConfigMap carries the container
//! configuration byte for byte, and the placeholder Secret cannot start an authority. Finally
//! `tsa serve`, started as the image starts it on the shipped configuration (its paths moved to
//! a temporary directory, keys from `deploy/make-dev-secrets.sh`, SQLite for PostgreSQL),
//! answers `/healthz` and grants a token, and stops within its budget.
//!
//! No container engine or cluster runs here: YAML is read with PyYAML and TOML with Python's
//! tomllib, both printed as JSON.

use serde_json::Value;
use sigillum_tests::{run, tsa_bin, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the container configuration's files live inside the container.
const ETC: &str = "/etc/sigillum";

fn deploy() -> PathBuf {
    workspace_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn python_json(script: &str, path: &Path) -> Value {
    let r = run(Command::new("python3").arg("-c").arg(script).arg(path));
    r.assert_ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{}: {e}\n{r}", path.display()))
}

/// Every document of a YAML file (PyYAML, merge keys resolved).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs = python_json(
        "import json, sys, yaml\n\
         print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        path,
    );
    docs.as_array().cloned().unwrap_or_default()
}

fn toml_json(path: &Path) -> Value {
    python_json(
        "import json, sys, tomllib\nprint(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        path,
    )
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| s(x).to_owned())
        .collect()
}

// ---- the container configuration --------------------------------------------------------

struct ContainerConfig {
    text: String,
    toml: Value,
    port: u16,
    data_dir: String,
    /// The files the configuration names under /etc/sigillum: mounted secrets.
    files: BTreeSet<String>,
    /// Environment variables the configuration names ([key.pkcs11] pin_env).
    pin_envs: BTreeSet<String>,
    /// The longest stop after SIGTERM, as `tsa::config::Config::stop_budget` computes it:
    /// drain_timeout_ms + commit_timeout_ms + 3 s.
    stop_budget: Duration,
}

fn container_config() -> ContainerConfig {
    let path = deploy().join("tsa.container.toml");
    let toml = toml_json(&path);
    let listen = s(&toml["listen"]).to_owned();
    let (host, port) = listen
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("listen {listen:?}"));
    let port: u16 = port.parse().expect("listen port");
    assert_eq!(
        host, "0.0.0.0",
        "in a container tsa must listen on every interface"
    );
    let mut all = Vec::new();
    collect_strings(&toml, "", &mut all);
    let mut files = BTreeSet::new();
    let mut pin_envs = BTreeSet::new();
    for (key, value) in &all {
        if key.ends_with("pin_env") {
            pin_envs.insert(value.clone());
        }
        if value.starts_with('/') && key != "data_dir" {
            assert!(
                value.starts_with(&format!("{ETC}/")),
                "{key} = {value:?}: the container's files are mounted under {ETC}"
            );
            files.insert(value.clone());
        }
    }
    let ms =
        |section: &str, key: &str, default: u64| toml[section][key].as_u64().unwrap_or(default);
    ContainerConfig {
        text: read(&path),
        port,
        data_dir: s(&toml["data_dir"]).to_owned(),
        files,
        pin_envs,
        stop_budget: Duration::from_millis(
            ms("server", "drain_timeout_ms", 10_000)
                + ms("archive", "commit_timeout_ms", 5_000)
                + 3_000,
        ),
        toml,
    }
}

fn collect_strings(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(x) => out.push((path.to_owned(), x.clone())),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, path, out)),
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_strings(v, &p, out);
            }
        }
        _ => {}
    }
}

// ---- what the binary accepts ------------------------------------------------------------

struct Binary {
    /// `tsa serve` options that take a value, e.g. `--config`.
    serve_flags: BTreeSet<String>,
    /// Environment variables `tsa serve --help` names.
    env: BTreeSet<String>,
}

fn binary() -> Binary {
    let help = run(Command::new(tsa_bin()).args(["serve", "--help"]));
    help.assert_ok();
    let words: Vec<&str> = help.stdout.split_whitespace().collect();
    let mut serve_flags = BTreeSet::new();
    let mut env = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        if w.starts_with("--") && words.get(i + 1).is_some_and(|n| n.starts_with('<')) {
            serve_flags.insert((*w).to_owned());
        }
        if *w == "[env:"
            && let Some(name) = words.get(i + 1).and_then(|n| n.strip_suffix("=]"))
        {
            env.insert(name.to_owned());
        }
    }
    for expected in ["--config", "--listen", "--database-url", "--log-format"] {
        assert!(
            serve_flags.contains(expected),
            "{expected} missing from {serve_flags:?}:\n{help}"
        );
    }
    assert!(env.contains("TSA_DATABASE_URL"), "{env:?}:\n{help}");
    Binary { serve_flags, env }
}

/// Environment variables a manifest may set for tsa: those it reads, and the PIN variables the
/// configuration names.
fn allowed_env(bin: &Binary, cfg: &ContainerConfig) -> BTreeSet<String> {
    bin.env.union(&cfg.pin_envs).cloned().collect()
}

fn assert_env_read_by_tsa<'a>(
    what: &str,
    names: impl IntoIterator<Item = &'a str>,
    allowed: &BTreeSet<String>,
) {
    for name in names {
        assert!(
            allowed.contains(name),
            "{what} sets {name}, which tsa does not read (it reads {allowed:?})"
        );
    }
}

/// Checks that `argv` (after the `tsa` program) is a `tsa serve` invocation with a
/// configuration file: statically against `tsa serve --help`, then by running it with the
/// configuration path replaced by a missing file — clap accepts the command line, and tsa
/// stops only at reading the configuration. Returns the `--config` path.
fn assert_valid_serve(what: &str, argv: &[String], bin: &Binary) -> String {
    assert_eq!(
        argv.first().map(String::as_str),
        Some("serve"),
        "{what}: {argv:?}"
    );
    let mut config = None;
    let mut rest = argv[1..].iter();
    while let Some(arg) = rest.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), v.to_owned()),
            None => (
                arg.clone(),
                rest.next()
                    .unwrap_or_else(|| panic!("{what}: {arg} without a value in {argv:?}"))
                    .clone(),
            ),
        };
        assert!(
            bin.serve_flags.contains(&flag),
            "{what}: `tsa serve` has no option {flag} (it has {:?})",
            bin.serve_flags
        );
        assert!(!value.starts_with("--"), "{what}: {flag} {value}");
        if flag == "--log-format" {
            assert!(
                ["text", "json"].contains(&value.as_str()),
                "{what}: {value}"
            );
        }
        if flag == "--config" {
            config = Some(value);
        }
    }
    let config = config.unwrap_or_else(|| panic!("{what}: no --config in {argv:?}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.replace(&config, &missing.to_string_lossy()))
        .collect();
    let r = run(without_tsa_env(Command::new(tsa_bin()).current_dir(dir.path())).args(&args));
    assert_eq!(r.code, Some(2), "{what}: {r}");
    assert!(
        r.stderr.contains("cannot read configuration file"),
        "{what}: tsa did not take {argv:?} as a valid command line: {r}"
    );
    config
}

fn without_tsa_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TSA_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `(port, path)` of an `http://HOST:PORT/PATH` URL.
fn url_port_path(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}"));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80);
    (port, format!("/{path}"))
}

// ---- the Dockerfile ---------------------------------------------------------------------

struct Dockerfile {
    /// The final stage's instructions: (KEYWORD, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let text = read(&deploy().join("Dockerfile"));
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        let mut instructions = Vec::new();
        for l in logical {
            let (kw, rest) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
            let kw = kw.to_ascii_uppercase();
            if kw == "FROM" {
                instructions.clear();
            }
            instructions.push((kw, rest.trim().to_owned()));
        }
        Dockerfile { instructions }
    }

    fn all(&self, kw: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn last(&self, kw: &str) -> &str {
        self.all(kw)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("the Dockerfile's final stage has no {kw}"))
    }

    fn exec_form(&self, kw: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(self.last(kw))
            .unwrap_or_else(|e| panic!("{kw} must be in exec (JSON) form: {e}"));
        strings(&v)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.all("ENV")
            .iter()
            .flat_map(|e| e.split_whitespace())
            .map(|kv| {
                let (k, v) = kv
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV {kv}: use KEY=VALUE"));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }
}

// ---- compose ----------------------------------------------------------------------------

fn compose() -> Value {
    yaml_docs(&deploy().join("docker-compose.yml"))
        .into_iter()
        .next()
        .expect("docker-compose.yml is empty")
}

/// The compose services that run the image built from deploy/Dockerfile.
fn tsa_services(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, svc)| svc["build"]["dockerfile"].as_str() == Some("deploy/Dockerfile"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn compose_env(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let (k, v) = s(i).split_once('=').unwrap_or((s(i), ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Mount target -> source, for a compose service's configs, secrets and volumes.
fn compose_mounts(svc: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kind in ["configs", "secrets"] {
        for m in svc[kind].as_array().into_iter().flatten() {
            let (source, target) = match m {
                Value::String(name) => (name.clone(), format!("/run/secrets/{name}")),
                _ => (
                    s(&m["source"]).to_owned(),
                    m["target"].as_str().map_or_else(
                        || format!("/run/secrets/{}", s(&m["source"])),
                        str::to_owned,
                    ),
                ),
            };
            out.insert(target, format!("{kind}:{source}"));
        }
    }
    for v in svc["volumes"].as_array().into_iter().flatten() {
        let (source, target) = match v {
            Value::String(short) => {
                let parts: Vec<&str> = short.split(':').collect();
                (parts[0].to_owned(), parts[1].to_owned())
            }
            _ => (
                v["source"].as_str().unwrap_or_default().to_owned(),
                s(&v["target"]).to_owned(),
            ),
        };
        out.insert(target, format!("volume:{source}"));
    }
    out
}

/// A compose duration ("30s", "1m30s", "500ms") in milliseconds.
fn compose_duration(text: &str) -> Duration {
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().unwrap_or_else(|_| panic!("{text}"));
        number.clear();
        total += match c {
            'h' => n * 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n
            }
            'm' => n * 60_000,
            's' => n * 1000,
            _ => panic!("duration {text}"),
        };
    }
    assert!(number.is_empty(), "duration {text} without a unit");
    Duration::from_millis(total)
}

// ---- Kubernetes -------------------------------------------------------------------------

fn k8s_docs() -> Vec<(String, Value)> {
    let dir = deploy().join("k8s");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .flat_map(|n| {
            yaml_docs(&dir.join(&n))
                .into_iter()
                .map(move |d| (n.clone(), d))
        })
        .collect()
}

fn of_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

fn named<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

/// The keys a Secret or ConfigMap manifest holds, with their text.
fn k8s_data(obj: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for field in ["stringData", "data"] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            out.insert(k.clone(), s(v).to_owned());
        }
    }
    out
}

/// Panics naming the first line where `actual` differs from `expected`.
fn assert_same_text(actual: Option<&String>, expected: &str, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: missing"));
    if actual == expected {
        return;
    }
    let mut a = actual.lines();
    let mut e = expected.lines();
    for n in 1.. {
        let (x, y) = (a.next(), e.next());
        assert_eq!(x, y, "{what}: line {n} differs");
        if x.is_none() {
            break;
        }
    }
    panic!("{what}: the texts differ in their line endings");
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v))
}

/// The files a volume puts in the container: path inside the volume -> (kind, object, key).
fn volume_files(volume: &Value) -> Vec<(String, &'static str, String, String)> {
    let mut sources = Vec::new();
    if let Some(list) = volume["projected"]["sources"].as_array() {
        sources.extend(list.iter().cloned());
    }
    for kind in ["configMap", "secret"] {
        if !volume[kind].is_null() {
            sources.push(serde_json::json!({ kind: volume[kind] }));
        }
    }
    let mut out = Vec::new();
    for src in sources {
        for (kind, name_field) in [("configMap", "name"), ("secret", "secretName")] {
            let obj = &src[kind];
            if obj.is_null() {
                continue;
            }
            let name = obj[name_field]
                .as_str()
                .or_else(|| obj["name"].as_str())
                .unwrap_or_else(|| panic!("{kind} without a name: {obj}"))
                .to_owned();
            let items = obj["items"]
                .as_array()
                .unwrap_or_else(|| panic!("{kind} {name}: list its items, so every path is known"));
            for item in items {
                let kind: &'static str = if kind == "configMap" {
                    "ConfigMap"
                } else {
                    "Secret"
                };
                out.push((
                    s(&item["path"]).to_owned(),
                    kind,
                    name.clone(),
                    s(&item["key"]).to_owned(),
                ));
            }
        }
    }
    out
}

fn probe_port(probe: &Value, ports: &[Value]) -> u16 {
    let port = &probe["httpGet"]["port"];
    match port {
        Value::Number(n) => u16::try_from(n.as_u64().expect("port")).expect("port"),
        Value::String(name) => ports
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no container port named {name}")),
        _ => panic!("probe without httpGet.port: {probe}"),
    }
}

// ---- the tests --------------------------------------------------------------------------

#[test]
fn the_container_config_listens_everywhere_names_its_public_url_and_keeps_its_files_under_etc() {
    let cfg = container_config();
    assert_eq!(cfg.data_dir, "/var/lib/sigillum");
    assert_eq!(cfg.toml["allow_unsynced_clock"], false);
    // Listening on 0.0.0.0 with the CA on: tsa refuses to start without a public URL.
    let ca = &cfg.toml["ca"];
    if ca["enabled"] != false {
        let url = ca["public_url"]
            .as_str()
            .expect("[ca] public_url: required when listening on 0.0.0.0 with the CA on");
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "{url}"
        );
        assert!(
            ca["enrolment_key"].is_string(),
            "nodes on one database need one mounted enrolment key"
        );
    }
    // Without TSA_DATABASE_URL a node fails to connect rather than archive in the container.
    assert!(
        s(&cfg.toml["database_url"]).starts_with("postgres://"),
        "the file's database_url must not fall back to SQLite inside the container"
    );
    assert!(
        cfg.files.contains(&format!("{ETC}/tsa.pem")),
        "{:?}",
        cfg.files
    );
}

#[test]
fn the_dockerfile_exposes_starts_and_checks_what_the_container_config_says() {
    let cfg = container_config();
    let bin = binary();
    let df = Dockerfile::load();
    assert_eq!(df.exec_form("ENTRYPOINT"), ["/usr/local/bin/tsa"]);
    let config = assert_valid_serve("Dockerfile CMD", &df.exec_form("CMD"), &bin);
    assert!(
        df.all("COPY")
            .iter()
            .any(|c| *c == format!("deploy/tsa.container.toml {config}")),
        "the image must carry deploy/tsa.container.toml at {config}: {:?}",
        df.all("COPY")
    );
    let exposed: Vec<u16> = df
        .all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
        .collect();
    assert_eq!(exposed, [cfg.port], "EXPOSE");
    let user = df.last("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("USER {user}: give a numeric uid (runAsNonRoot checks it)"));
    assert_ne!(uid, 0, "the image runs as root");
    let volumes: Value = serde_json::from_str(df.last("VOLUME")).expect("VOLUME as JSON");
    assert_eq!(
        strings(&volumes),
        std::slice::from_ref(&cfg.data_dir),
        "VOLUME"
    );
    let env = df.env();
    assert_env_read_by_tsa(
        "the Dockerfile",
        env.iter().map(|(k, _)| k.as_str()),
        &allowed_env(&bin, &cfg),
    );
    for (k, v) in &env {
        if k == "TSA_CONFIG" {
            assert_eq!(v, &config, "TSA_CONFIG and CMD name one file");
        }
    }
    // HEALTHCHECK with a program the image installs, on /healthz at the configured port.
    let hc = df.last("HEALTHCHECK");
    let cmd: Value = serde_json::from_str(
        hc.split_once("CMD ")
            .unwrap_or_else(|| panic!("HEALTHCHECK {hc}"))
            .1,
    )
    .expect("HEALTHCHECK CMD in exec form");
    let cmd = strings(&cmd);
    assert_eq!(cmd[0], "curl", "HEALTHCHECK {cmd:?}");
    assert!(
        df.all("RUN")
            .iter()
            .any(|r| r.contains("apt-get install") && r.contains(" curl")),
        "HEALTHCHECK uses curl: the runtime stage must install it"
    );
    assert!(
        cmd.iter().any(|a| a.starts_with("-f") || a == "--fail"),
        "curl must fail on /healthz's 503: {cmd:?}"
    );
    let url = cmd
        .iter()
        .find(|a| a.starts_with("http://"))
        .expect("HEALTHCHECK URL");
    assert_eq!(url_port_path(url), (cfg.port, "/healthz".to_owned()));
}

#[test]
fn compose_runs_two_nodes_on_healthy_postgres_with_the_same_secrets_behind_round_robin() {
    let cfg = container_config();
    let bin = binary();
    let df = Dockerfile::load();
    let allowed = allowed_env(&bin, &cfg);
    let compose = compose();
    let nodes = tsa_services(&compose);
    assert!(nodes.len() >= 2, "two TSA nodes at least: {nodes:?}");
    let mut shared_mounts: Option<BTreeMap<String, String>> = None;
    for (name, svc) in &nodes {
        let what = format!("compose service {name}");
        let env = compose_env(svc);
        assert_env_read_by_tsa(&what, env.keys().map(String::as_str), &allowed);
        let url = env
            .get("TSA_DATABASE_URL")
            .unwrap_or_else(|| panic!("{what}: TSA_DATABASE_URL"));
        assert!(url.starts_with("postgres://"), "{what}: {url}");
        if !svc["entrypoint"].is_null() {
            assert_eq!(strings(&svc["entrypoint"]), df.exec_form("ENTRYPOINT"));
        }
        let argv = match &svc["command"] {
            Value::Null => df.exec_form("CMD"),
            Value::String(c) => c.split_whitespace().map(str::to_owned).collect(),
            other => strings(other),
        };
        let config = assert_valid_serve(&what, &argv, &bin);
        let mounts = compose_mounts(svc);
        assert!(
            mounts.contains_key(&config),
            "{what}: nothing mounted at {config}"
        );
        for file in &cfg.files {
            assert!(
                mounts.contains_key(file),
                "{what}: the configuration names {file}, which is not mounted ({mounts:?})"
            );
        }
        assert!(
            mounts.contains_key(&cfg.data_dir),
            "{what}: a volume at {} (the root filesystem is read-only)",
            cfg.data_dir
        );
        assert_eq!(
            mounts[&config], "configs:tsa_toml",
            "{what}: configuration at {config}"
        );
        assert_eq!(
            s(&compose["configs"]["tsa_toml"]["file"]),
            "./tsa.container.toml"
        );
        // Every node: the same configuration and secrets (the data volume is its own).
        let shared: BTreeMap<String, String> = mounts
            .into_iter()
            .filter(|(t, _)| t != &cfg.data_dir)
            .collect();
        match &shared_mounts {
            None => shared_mounts = Some(shared),
            Some(first) => assert_eq!(first, &shared, "{what} mounts other files"),
        }
        let test = strings(&svc["healthcheck"]["test"]);
        assert_eq!(
            test[0], "CMD",
            "{what}: healthcheck in exec form (no shell in use)"
        );
        let url = test
            .iter()
            .find(|a| a.starts_with("http://"))
            .expect("healthcheck URL");
        assert_eq!(url_port_path(url), (cfg.port, "/healthz".to_owned()));
        let db = svc["depends_on"]
            .as_object()
            .and_then(|d| {
                d.iter().find(|(n, _)| {
                    compose["services"][n.as_str()]["image"]
                        .as_str()
                        .is_some_and(|i| i.starts_with("postgres:"))
                })
            })
            .unwrap_or_else(|| panic!("{what}: depends on no postgres service"));
        assert_eq!(db.1["condition"], "service_healthy", "{what}");
        let pg = &compose["services"][db.0.as_str()];
        assert!(
            strings(&pg["healthcheck"]["test"])
                .iter()
                .any(|a| a.contains("pg_isready")),
            "postgres healthcheck: pg_isready"
        );
        let grace = compose_duration(s(&svc["stop_grace_period"]));
        assert!(
            grace >= cfg.stop_budget,
            "{what}: stop_grace_period {grace:?} < tsa's stop budget {:?}",
            cfg.stop_budget
        );
    }

    // The load balancer: HAProxy with deploy/haproxy.cfg, round robin over every node.
    let (lb_name, lb) = compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .find(|(_, svc)| {
            compose_mounts(svc)
                .values()
                .any(|src| src == "volume:./haproxy.cfg")
        })
        .expect("a load balancer service mounting ./haproxy.cfg");
    let haproxy = read(&deploy().join("haproxy.cfg"));
    let lines: Vec<Vec<&str>> = haproxy
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect()
        })
        .filter(|w: &Vec<&str>| !w.is_empty())
        .collect();
    let has = |words: &[&str]| lines.iter().any(|l| l.as_slice() == words);
    assert!(
        has(&["balance", "roundrobin"]),
        "haproxy.cfg: balance roundrobin"
    );
    assert!(
        has(&["http-check", "send", "meth", "GET", "uri", "/healthz"])
            || has(&["option", "httpchk", "GET", "/healthz"]),
        "haproxy.cfg: health checks on /healthz"
    );
    assert!(has(&["http-check", "expect", "status", "200"]));
    for (name, _) in &nodes {
        let target = format!("{name}:{}", cfg.port);
        assert!(
            lines.iter().any(|l| l[0] == "server"
                && l.get(2) == Some(&target.as_str())
                && l.contains(&"check")),
            "haproxy.cfg: no checked server {target}"
        );
    }
    let bind = lines
        .iter()
        .find(|l| l[0] == "bind")
        .and_then(|l| l.get(1))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("haproxy.cfg: bind :PORT");
    let published = strings(&lb["ports"]);
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{bind}"))),
        "{lb_name} publishes {published:?}, HAProxy binds {bind}"
    );
}

#[test]
fn the_kubernetes_deployment_probes_healthz_on_its_port_runs_non_root_read_only_and_keeps_two() {
    let cfg = container_config();
    let bin = binary();
    let df = Dockerfile::load();
    let docs = k8s_docs();
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    let dep = deployments[0];
    let replicas = dep["spec"]["replicas"].as_u64().unwrap_or(1);
    assert!(replicas >= 2, "replicas {replicas}");
    let pod = &dep["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(labels_match(
        &dep["spec"]["selector"]["matchLabels"],
        labels
    ));
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container: tsa");
    let c = &containers[0];

    let non_root = |sc: &Value| sc["runAsNonRoot"] == true;
    assert!(non_root(&spec["securityContext"]) || non_root(&c["securityContext"]));
    for sc in [&spec["securityContext"], &c["securityContext"]] {
        if let Some(uid) = sc["runAsUser"].as_u64() {
            assert_ne!(uid, 0);
        }
    }
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);

    if !c["command"].is_null() {
        assert_eq!(strings(&c["command"]), df.exec_form("ENTRYPOINT"));
    }
    let argv = if c["args"].is_null() {
        df.exec_form("CMD")
    } else {
        strings(&c["args"])
    };
    let config = assert_valid_serve("the Deployment", &argv, &bin);

    let ports = c["ports"].as_array().cloned().unwrap_or_default();
    let container_ports: Vec<u64> = ports
        .iter()
        .map(|p| p["containerPort"].as_u64().expect("containerPort"))
        .collect();
    assert_eq!(container_ports, [u64::from(cfg.port)], "containerPort");
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let p = &c[probe];
        if p.is_null() {
            assert_eq!(probe, "startupProbe", "{probe} missing");
            continue;
        }
        // Readiness (and startup) on /healthz; liveness on /livez, which answers while the
        // process serves HTTP (a database outage must not restart every pod).
        let path = if probe == "livenessProbe" {
            "/livez"
        } else {
            "/healthz"
        };
        assert_eq!(s(&p["httpGet"]["path"]), path, "{probe}");
        assert_eq!(probe_port(p, &ports), cfg.port, "{probe}");
    }

    let allowed = allowed_env(&bin, &cfg);
    let env = c["env"].as_array().cloned().unwrap_or_default();
    assert_env_read_by_tsa(
        "the Deployment",
        env.iter().map(|e| s(&e["name"])),
        &allowed,
    );
    let db = env
        .iter()
        .find(|e| e["name"] == "TSA_DATABASE_URL")
        .expect("TSA_DATABASE_URL");
    let from = &db["valueFrom"]["secretKeyRef"];
    assert!(
        db["value"].is_null() && from.is_object(),
        "the database URL (with its password) comes from a Secret"
    );
    let secret = named(&docs, "Secret", s(&from["name"]));
    assert!(
        k8s_data(secret).contains_key(s(&from["key"])),
        "Secret {} has no {}",
        from["name"],
        from["key"]
    );

    // Every file the configuration names, and the configuration itself, is mounted.
    let volumes: BTreeMap<String, &Value> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (s(&v["name"]).to_owned(), v))
        .collect();
    let mut files = BTreeMap::new();
    let mut data_dir_mounted = false;
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let mount_path = s(&m["mountPath"]).trim_end_matches('/');
        let volume = volumes[s(&m["name"])];
        if mount_path == cfg.data_dir {
            assert!(
                !volume["emptyDir"].is_null() || !volume["persistentVolumeClaim"].is_null(),
                "{}: an emptyDir or a PVC (the root filesystem is read-only)",
                cfg.data_dir
            );
            assert_ne!(m["readOnly"], true, "the data directory must be writable");
            data_dir_mounted = true;
        }
        for (path, kind, name, key) in volume_files(volume) {
            files.insert(format!("{mount_path}/{path}"), (kind, name, key));
        }
    }
    assert!(data_dir_mounted, "nothing mounted at {}", cfg.data_dir);
    let (kind, name, key) = files
        .get(&config)
        .unwrap_or_else(|| panic!("nothing provides {config}: {files:?}"));
    assert_eq!(*kind, "ConfigMap", "{config}");
    assert_same_text(
        k8s_data(named(&docs, "ConfigMap", name)).get(key.as_str()),
        &cfg.text,
        &format!("{config} comes from ConfigMap {name} key {key}: deploy/tsa.container.toml"),
    );
    for file in &cfg.files {
        let (kind, name, key) = files
            .get(file)
            .unwrap_or_else(|| panic!("the configuration names {file}; nothing mounts it"));
        assert_eq!(*kind, "Secret", "{file}");
        assert!(
            k8s_data(named(&docs, "Secret", name)).contains_key(key.as_str()),
            "Secret {name} has no {key} (for {file})"
        );
    }

    // SIGTERM: the preStop pause, then tsa's own stop, within the grace period.
    let grace = Duration::from_secs(spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let pre_stop = Duration::from_secs(
        c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or(0),
    );
    assert!(
        grace >= pre_stop + cfg.stop_budget,
        "terminationGracePeriodSeconds {grace:?} < preStop {pre_stop:?} + stop budget {:?}",
        cfg.stop_budget
    );

    // The Service reaches the container port; the PodDisruptionBudget keeps one node.
    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 1, "one Service");
    let svc = services[0];
    assert!(
        labels_match(&svc["spec"]["selector"], labels),
        "Service selector"
    );
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .expect("Service ports")
            .iter()
            .any(|p| {
                let target = match &p["targetPort"] {
                    Value::Null => p["port"].as_u64(),
                    Value::String(n) => ports
                        .iter()
                        .find(|cp| cp["name"] == n.as_str())
                        .and_then(|cp| cp["containerPort"].as_u64()),
                    t => t.as_u64(),
                };
                target == Some(u64::from(cfg.port))
                    && p["port"].as_u64() == Some(u64::from(cfg.port))
            }),
        "the Service's port {} must reach the container's",
        cfg.port
    );
    let pdbs = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1, "one PodDisruptionBudget");
    let pdb = pdbs[0];
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        labels
    ));
    let min = pdb["spec"]["minAvailable"]
        .as_u64()
        .expect("minAvailable as a number");
    assert!(
        min >= 1 && min < replicas,
        "minAvailable {min} of {replicas}"
    );
}

#[test]
fn the_configmap_holds_the_container_config_byte_for_byte() {
    let cfg = container_config();
    let docs = k8s_docs();
    let maps = of_kind(&docs, "ConfigMap");
    assert_eq!(maps.len(), 1, "one ConfigMap");
    assert_same_text(
        k8s_data(maps[0]).get("tsa.toml"),
        &cfg.text,
        "deploy/k8s/configmap.yaml must carry deploy/tsa.container.toml unchanged",
    );
}

#[test]
fn the_placeholder_secrets_are_marked_kept_out_of_kustomize_and_cannot_start_an_authority() {
    let docs = k8s_docs();
    for (file, doc) in &docs {
        if doc["kind"] == "Secret" {
            assert!(
                doc["data"].is_null(),
                "{file}: placeholders in stringData, readable"
            );
            for (k, v) in k8s_data(doc) {
                assert!(
                    v.contains("REPLACE-ME"),
                    "{file}: {k} is not marked as a placeholder"
                );
            }
        }
    }
    // `kubectl apply -k` applies every manifest but the placeholders.
    let kustomization = docs
        .iter()
        .find(|(f, _)| f == "kustomization.yaml")
        .map(|(_, d)| d)
        .expect("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let expected: BTreeSet<String> = docs
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| f != "kustomization.yaml" && f != "secret.yaml")
        .collect();
    assert_eq!(listed, expected, "kustomization.yaml resources");

    // Mounted as the Deployment mounts them, the placeholders stop tsa at start.
    let cfg = container_config();
    let tmp = tempfile::tempdir().expect("tempdir");
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let dep = of_kind(&docs, "Deployment")[0];
    let spec = &dep["spec"]["template"]["spec"];
    let mut written = 0;
    for m in spec["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
    {
        if m["mountPath"] != ETC {
            continue;
        }
        let volume = spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == m["name"])
            .expect("the mounted volume");
        for (path, kind, name, key) in volume_files(volume) {
            if kind == "Secret" {
                let text = k8s_data(named(&docs, "Secret", &name))[&key].clone();
                std::fs::write(etc.join(path), text).expect("write placeholder");
                written += 1;
            }
        }
    }
    assert!(written > 0, "no Secret mounted at {ETC}");
    let port = sigillum_tests::free_port();
    std::fs::write(
        etc.join("tsa.toml"),
        local_config(&cfg, tmp.path(), port, false),
    )
    .expect("write config");
    let mut child = without_tsa_env(&mut Command::new(tsa_bin()))
        .args(["serve", "--config"])
        .arg(etc.join("tsa.toml"))
        .env("TSA_DATABASE_URL", sqlite_url(tmp.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tsa");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tsa kept running on placeholder secrets");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&etc.to_string_lossy().into_owned()),
        "the refusal names the placeholder file: {stderr}"
    );
}

/// The container configuration with its paths moved under `root` (`/etc/sigillum` to
/// `root/etc`, the data directory to `root/data`), listening on 127.0.0.1:`port`.
fn local_config(cfg: &ContainerConfig, root: &Path, port: u16, allow_unsynced: bool) -> String {
    let listen = format!("listen = \"0.0.0.0:{}\"\n", cfg.port);
    assert_eq!(cfg.text.matches(&listen).count(), 1, "one listen line");
    let unsynced = "allow_unsynced_clock = false\n";
    assert_eq!(
        cfg.text.matches(unsynced).count(),
        1,
        "one allow_unsynced_clock line"
    );
    let text = cfg
        .text
        .replace(&listen, &format!("listen = \"127.0.0.1:{port}\"\n"))
        .replace(
            unsynced,
            &format!("allow_unsynced_clock = {allow_unsynced}\n"),
        )
        .replace(ETC, &root.join("etc").to_string_lossy())
        .replace(&cfg.data_dir, &root.join("data").to_string_lossy());
    assert!(
        !text.contains(ETC) && !text.contains(&cfg.data_dir),
        "{text}"
    );
    text
}

fn sqlite_url(root: &Path) -> String {
    format!(
        "sqlite://{}",
        root.join("data").join("archive.db").display()
    )
}

/// `tsa serve` started with the image's command line and environment; killed when dropped.
struct Node {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Node {
    /// Starts the image's command on the container configuration moved under `root`, with the
    /// image's environment (paths moved too) and the archive in SQLite instead of PostgreSQL;
    /// waits until `/healthz` answers.
    fn start(root: &Path, allow_unsynced: bool) -> Node {
        let cfg = container_config();
        let df = Dockerfile::load();
        let moved = |v: &str| v.replace(ETC, &root.join("etc").to_string_lossy());
        let argv: Vec<String> = df.exec_form("CMD").iter().map(|a| moved(a)).collect();
        let config_path = argv
            .iter()
            .skip_while(|a| *a != "--config")
            .nth(1)
            .expect("--config")
            .clone();
        let log = root.join("tsa.log");
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = sigillum_tests::free_port();
            std::fs::write(&config_path, local_config(&cfg, root, port, allow_unsynced))
                .expect("write config");
            let out = std::fs::File::create(&log).expect("log");
            let mut cmd = Command::new(tsa_bin());
            without_tsa_env(&mut cmd)
                .current_dir(root)
                .args(&argv)
                .envs(df.env().into_iter().map(|(k, v)| (k, moved(&v))))
                .env("TSA_DATABASE_URL", sqlite_url(root))
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log fd"))
                .stderr(out);
            let mut node = Node {
                child: Some(cmd.spawn().expect("start tsa")),
                log: log.clone(),
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let agent = sigillum_tests::agent(Duration::from_secs(2));
            loop {
                if let Some(status) = node
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    last = format!("tsa exited {status}:\n{}", node.log());
                    break;
                }
                if agent.get(format!("{}healthz", node.url())).call().is_ok() {
                    return node;
                }
                assert!(
                    Instant::now() < deadline,
                    "/healthz never answered:\n{}",
                    node.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            node.child = None;
            if !last.contains("cannot listen") {
                break;
            }
        }
        panic!("tsa serve did not start on the container configuration: {last}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn healthz(&self) -> (u16, Value) {
        let reply = sigillum_tests::get(&format!("{}healthz", self.url()));
        let body = serde_json::from_slice(&reply.body).expect("/healthz JSON");
        (reply.status, body)
    }

    /// SIGTERM, as `docker stop` and the kubelet send it; returns the exit code and how long
    /// the stop took.
    fn stop(&mut self) -> (Option<i32>, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        run(Command::new("kill").args(["-TERM", &child.id().to_string()])).assert_ok();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tsa did not stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- tsa log ---\n{}", self.log());
        }
    }
}

#[test]
fn the_image_start_command_serves_the_shipped_config_answers_healthz_and_grants() {
    let cfg = container_config();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // The development secrets compose uses, made by the shipped script.
    let made = run(Command::new("sh")
        .arg(deploy().join("make-dev-secrets.sh"))
        .arg(root.join("etc"))
        .env("TSA", tsa_bin()));
    made.assert_ok();
    for file in &cfg.files {
        let local = root
            .join("etc")
            .join(file.trim_start_matches(&format!("{ETC}/")));
        assert!(local.is_file(), "make-dev-secrets.sh made no {file}");
    }

    // Exactly as shipped: it is accepted, and /healthz is 200 unless this machine's kernel says
    // its clock is unsynchronised — then 503 for that reason alone.
    let policy = &cfg.toml["policy"];
    let accuracy_us = policy["accuracy_seconds"].as_i64().unwrap_or(0) * 1_000_000
        + policy["accuracy_millis"].as_i64().unwrap_or(0) * 1000
        + policy["accuracy_micros"].as_i64().unwrap_or(0);
    let synced = sysclock::status().is_ok_and(|s| s.synchronized && s.max_error_us <= accuracy_us);
    let mut node = Node::start(root, false);
    // Liveness: 200 whatever the readiness says.
    let live = sigillum_tests::get(&format!("{}livez", node.url()));
    assert_eq!(live.status, 200, "/livez");
    let (status, body) = node.healthz();
    assert_eq!(body["archive_writable"], true, "{body}");
    assert_eq!(body["archive_reachable"], true, "{body}");
    assert!(body["key_usable_until"].is_string(), "{body}");
    if !synced {
        eprintln!(
            "NOTE: the kernel says the clock is NOT synchronised: the shipped configuration \
             (allow_unsynced_clock = false) must answer 503; then serving with it set to true"
        );
        assert_eq!(
            (status, &body["clock_usable"]),
            (503, &Value::Bool(false)),
            "{body}"
        );
        let (code, _) = node.stop();
        assert_eq!(code, Some(0), "{}", node.log());
        node = Node::start(root, true);
    }
    let (status, body) = node.healthz();
    assert_eq!(status, 200, "{body}\n{}", node.log());
    assert_eq!(body["status"], "ok");

    // It issues under the configured policy, and the log is JSON (TSA_LOG_FORMAT from the image).
    let req = sigillum_tests::der::ReqSpec::sha256(b"deployed").encode();
    let reply = sigillum_tests::post(&node.url(), "application/timestamp-query", &req);
    let token = sigillum_tests::granted_token(&reply);
    assert_eq!(
        token.tst_info.policy.to_string(),
        s(&cfg.toml["policy"]["default"])
    );
    assert!(token.tst_info.accuracy.is_some(), "accuracy is declared");
    assert_eq!(
        sigillum_tests::get(&format!("{}metrics", node.url())).status,
        200
    );
    assert!(
        node.log().lines().any(|l| serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["fields"]["message"] == "serving RFC 3161")),
        "JSON log lines expected:\n{}",
        node.log()
    );

    // SIGTERM: a clean exit, within the budget the grace periods are sized for.
    let (code, took) = node.stop();
    assert_eq!(code, Some(0), "{}", node.log());
    assert!(took <= cfg.stop_budget, "stop took {took:?}");
}
