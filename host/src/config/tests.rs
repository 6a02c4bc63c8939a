//! Parsing and validation of configuration files.

use super::*;

const SAMPLE: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_token = "test-admin-token-0123"
[store]
path = "data"
[plugins]
dir = "plugins"
[[sources]]
name = "web"
write_key = "wk_web"
[[destinations]]
name = "hooks"
plugin = "webhook"
allowed_hosts = ["http://127.0.0.1:9999"]
settings = { url = "http://127.0.0.1:9999/hook", secret = "s3cret" }
retry = { initial_ms = 10, max_ms = 100, window = "1m" }
[destinations.filter]
types = ["track"]
"#;

#[test]
fn parses_the_readme_sample() {
    let c = Config::parse(SAMPLE, "x.toml", Path::new("/base")).unwrap();
    assert_eq!(c.sources["wk_web"], "web");
    assert_eq!(c.store.path, PathBuf::from("/base/data"));
    let d = &c.destinations[0];
    assert_eq!(d.retry.window, Duration::from_secs(60));
    assert_eq!(d.batch.max_events, 100);
    assert_eq!(d.settings["secret"], "s3cret");
    assert_eq!(d.filter.types, vec!["track"]);
}

#[test]
fn unknown_field_names_its_path() {
    let text = SAMPLE.replace("initial_ms = 10", "initial_ms = 10, bogus = 1");
    let err = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("destinations[0].retry") && err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn bad_values_name_their_path() {
    let text = SAMPLE.replace("window = \"1m\"", "window = \"soon\"");
    let err = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("destinations[0].retry.window"), "{err}");
    let text = SAMPLE.replace("types = [\"track\"]", "types = [\"tracks\"]");
    let err = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("destinations[0].filter.types[0]"), "{err}");
}

#[test]
fn syntax_errors_name_the_line() {
    let err = Config::parse("[server\nlisten=1", "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("x.toml:") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn a_short_admin_token_is_refused_and_generate_reads_the_kept_one() {
    let with = |token: &str, base: &Path| {
        Config::parse(
            &SAMPLE.replace("test-admin-token-0123", token),
            "x.toml",
            base,
        )
    };
    let err = with("dev-admin-token", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("server.admin_token") && err.contains("at least 16"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let c = with("generate", dir.path()).unwrap();
    assert_eq!(c.admin_token, None);
    let file = dir.path().join("data").join(ADMIN_TOKEN_FILE);
    assert_eq!(c.admin_token_file.as_deref(), Some(file.as_path()));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
    let c = with("generate", dir.path()).unwrap();
    assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
    std::fs::write(&file, "short\n").unwrap();
    let err = with("generate", dir.path()).unwrap_err().to_string();
    assert!(err.contains("admin-token"), "{err}");
}

#[test]
fn env_expansion() {
    std::env::set_var("SWITCHYARD_TEST_TOKEN", "abc");
    assert_eq!(expand_env("x${SWITCHYARD_TEST_TOKEN}y").unwrap(), "xabcy");
    assert_eq!(expand_env("$${LITERAL}").unwrap(), "${LITERAL}");
    assert!(expand_env("${SWITCHYARD_TEST_UNSET_VAR}").is_err());
    let text = SAMPLE.replace(
        "admin_token = \"test-admin-token-0123\"",
        "admin_token = \"${SWITCHYARD_TEST_UNSET_VAR}\"",
    );
    let err = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.admin_token"), "{err}");
}

#[test]
fn store_kind_and_ordering_are_named_values() {
    let text = SAMPLE.replace(
        "path = \"data\"",
        "path = \"data\"\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"",
    );
    let text = text.replace(
        "[destinations.filter]",
        "ordering = \"user\"\n[destinations.filter]",
    );
    let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
    assert_eq!(
        c.store.kind,
        StoreKind::Nats("nats://127.0.0.1:4222".into())
    );
    assert_eq!(c.destinations[0].ordering, Ordering::User);
    let c = Config::parse(SAMPLE, "x.toml", Path::new(".")).unwrap();
    assert_eq!(c.store.kind, StoreKind::Embedded);
    assert_eq!(c.destinations[0].ordering, Ordering::None);

    for (from, to, path, needle) in [
        (
            "path = \"data\"",
            "kind = \"sqlite\"",
            "store.kind",
            "embedded",
        ),
        (
            "path = \"data\"",
            "kind = \"nats\"",
            "store.url",
            "required",
        ),
        (
            "[destinations.filter]",
            "ordering = \"users\"\n[destinations.filter]",
            "destinations[0].ordering",
            "user",
        ),
    ] {
        let text = SAMPLE.replace(from, to);
        let err = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(path) && err.contains(needle), "{err}");
    }
}

#[test]
fn each_section_names_its_bad_values() {
    for (from, to, path) in [
        (
            "listen = \"127.0.0.1:0\"",
            "listen = \"nowhere\"",
            "server.listen",
        ),
        (
            "write_key = \"wk_web\"",
            "write_key = \"\"",
            "sources[0].write_key",
        ),
        ("name = \"web\"", "name = \"web/app\"", "sources[0].name"),
        (
            "plugin = \"webhook\"",
            "plugin = \"web hook\"",
            "destinations[0].plugin",
        ),
        (
            "retry = { initial_ms = 10, max_ms = 100, window = \"1m\" }",
            "retry = { initial_ms = 10, max_ms = 1, window = \"1m\" }",
            "destinations[0].retry",
        ),
        (
            "[destinations.filter]",
            "limits = { memory_mb = 4096 }\n[destinations.filter]",
            "destinations[0].limits.memory_mb",
        ),
        (
            "[destinations.filter]",
            "rate = { per_second = 0, burst = 1 }\n[destinations.filter]",
            "destinations[0].rate",
        ),
        (
            "allowed_hosts = [\"http://127.0.0.1:9999\"]",
            "allowed_hosts = [\"127.0.0.1\"]",
            "destinations[0].allowed_hosts[0]",
        ),
    ] {
        let text = SAMPLE.replace(from, to);
        assert_ne!(text, SAMPLE, "{from}");
        let err = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
}

#[test]
fn concurrency_is_a_number_or_an_adaptive_table() {
    let with = |line: &str| {
        Config::parse(
            &SAMPLE.replace(
                "[destinations.filter]",
                &format!("{line}\n[destinations.filter]"),
            ),
            "x.toml",
            Path::new("/"),
        )
    };
    let c = with("").unwrap();
    assert_eq!(
        c.destinations[0].concurrency,
        Concurrency::Adaptive { max: 16 }
    );
    assert_eq!(c.max_instances, 16, "the sum of the destinations' ceilings");
    let c = with("concurrency = 8").unwrap();
    assert_eq!(c.destinations[0].concurrency, Concurrency::Fixed(8));
    let c = with("concurrency = { adaptive = true, max = 64 }").unwrap();
    assert_eq!(
        c.destinations[0].concurrency,
        Concurrency::Adaptive { max: 64 }
    );
    let c = with("concurrency = { adaptive = false, max = 3 }").unwrap();
    assert_eq!(c.destinations[0].concurrency, Concurrency::Fixed(3));
    for (line, path, says) in [
        (
            "concurrency = 0",
            "destinations[0].concurrency",
            "between 1 and 1024",
        ),
        (
            "concurrency = \"lots\"",
            "destinations[0].concurrency",
            "a number",
        ),
        (
            "concurrency = { max = 5000 }",
            "destinations[0].concurrency.max",
            "between 1",
        ),
        (
            "concurrency = { maximum = 4 }",
            "destinations[0].concurrency.maximum",
            "unknown key",
        ),
        (
            "concurrency = { adaptive = 1 }",
            "destinations[0].concurrency.adaptive",
            "true or false",
        ),
    ] {
        let e = with(line).unwrap_err().to_string();
        assert!(e.contains(path) && e.contains(says), "{line}: {e}");
    }
    let c = Config::parse(
        &SAMPLE.replace("dir = \"plugins\"", "dir = \"plugins\"\nmax_instances = 40"),
        "x.toml",
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(c.max_instances, 40);
}

#[test]
fn ack_wait_is_for_nats_only() {
    let nats = SAMPLE.replace(
        "path = \"data\"",
        "kind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nack_wait = \"5s\"",
    );
    let c = Config::parse(&nats, "x.toml", Path::new("/")).unwrap();
    assert_eq!(c.store.ack_wait, Some(Duration::from_secs(5)));
    let e = Config::parse(
        &SAMPLE.replace("path = \"data\"", "ack_wait = \"5s\""),
        "x.toml",
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("store.ack_wait") && e.contains("embedded"),
        "{e}"
    );
}

#[test]
fn transforms_are_defined_once_and_listed_in_order() {
    let text = format!(
        "{}transforms = [\"mask\", \"consent\"]\n[[transforms]]\nname = \"mask\"\nplugin = \"mask-pii\"\nsettings = {{ hash = [\"traits.email\"] }}\nlimits = {{ timeout_ms = 500 }}\n[[transforms]]\nname = \"consent\"\nplugin = \"consent\"\nsettings = {{ categories = [\"Advertising\"] }}\n",
        SAMPLE.replace("[destinations.filter]\ntypes = [\"track\"]\n", "")
    );
    let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
    let d = &c.destinations[0];
    assert_eq!(d.transforms, vec!["mask", "consent"]);
    let chain = c.chain_of(d);
    assert_eq!(chain[0].plugin, "mask-pii");
    assert_eq!(chain[0].limits.timeout, Duration::from_millis(500));
    assert_eq!(chain[0].settings["hash"][0], "traits.email");
    let url = reqwest::Url::parse("https://example.com/").unwrap();
    assert!(chain[1].allowed_hosts.check(&url).is_err());
}

#[test]
fn bad_transforms_name_their_key() {
    let base = SAMPLE.replace("[destinations.filter]\ntypes = [\"track\"]\n", "");
    let t = |name: &str, plugin: &str| {
        format!("[[transforms]]\nname = \"{name}\"\nplugin = \"{plugin}\"\n")
    };
    for (text, path, part) in [
        (
            format!("{base}transforms = [\"nope\"]\n"),
            "destinations[0].transforms[0]",
            "no `[[transforms]]` is named `nope`",
        ),
        (
            format!("{base}transforms = [\"a\", \"a\"]\n{}", t("a", "p")),
            "destinations[0].transforms[1]",
            "listed twice",
        ),
        (
            format!("{base}{}{}", t("a", "p"), t("a", "q")),
            "transforms[1].name",
            "used twice",
        ),
        (
            format!("{base}{}", t("a", "webhook")),
            "transforms[0].plugin",
            "destination plugin of `hooks`",
        ),
        (
            format!("{base}{}settings = [1]\n", t("a", "p")),
            "transforms[0].settings",
            "",
        ),
        (
            format!("{base}{}limits = {{ memory_mb = 0 }}\n", t("a", "p")),
            "transforms[0].limits.memory_mb",
            "between 1",
        ),
        (
            format!("{base}{}allowed_hosts = [\"ftp://x\"]\n", t("a", "p")),
            "transforms[0].allowed_hosts[0]",
            "",
        ),
        (
            format!("{base}{}colour = 1\n", t("a", "p")),
            "transforms[0]",
            "colour",
        ),
    ] {
        let err = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(path) && err.contains(part), "{text}\n=> {err}");
    }
}

#[test]
fn durations_are_strings_or_milliseconds_everywhere() {
    let text = SAMPLE.replace(
        "retry = { initial_ms = 10, max_ms = 100, window = \"1m\" }",
        "retry = { initial = \"250ms\", max = \"2m\", window = \"1m\" }\n\
         batch = { linger = \"1s\" }\nlimits = { timeout = \"3s\" }",
    );
    let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
    let d = &c.destinations[0];
    assert_eq!(d.retry.initial, Duration::from_millis(250));
    assert_eq!(d.retry.max, Duration::from_secs(120));
    assert_eq!(d.batch.linger, Duration::from_secs(1));
    assert_eq!(d.limits.timeout, Duration::from_secs(3));

    // The integer keys keep working, and take a string too.
    let text = SAMPLE.replace("initial_ms = 10", "initial_ms = \"20ms\"");
    let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
    assert_eq!(c.destinations[0].retry.initial, Duration::from_millis(20));
    assert_eq!(c.destinations[0].retry.max, Duration::from_millis(100));

    for (bad, says) in [
        ("initial_ms = \"soon\"", "not a duration"),
        ("initial_ms = -5", "negative"),
        ("initial_ms = 10, initial = \"1s\"", "not both"),
        // A bare number under a key without a unit is refused, naming the key
        // and the unit expected (#35): `initial = 3` was read as 3 ms.
        ("initial = 3", "\"3s\""),
    ] {
        let text = SAMPLE.replace("initial_ms = 10", bad);
        let err = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("destinations[0].retry") && err.contains(says),
            "{bad}: {err}"
        );
    }
}

#[test]
fn secrets_are_read_once_and_their_placeholders_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "hook-secret-1234\n").unwrap();
    let with = |secrets: &str, settings: &str| {
        SAMPLE.replace(
            "settings = { url = \"http://127.0.0.1:9999/hook\", secret = \"s3cret\" }",
            &format!("secrets = {secrets}\nsettings = {settings}"),
        )
    };
    let good = with(
        r#"{ hook = { from = "file:key.txt", hosts = ["http://127.0.0.1:9999"] } }"#,
        r#"{ url = "http://127.0.0.1:9999/hook", secret = "${secret:hook}" }"#,
    );
    let c = Config::parse(&good, "x.toml", dir.path()).unwrap();
    let d = &c.destinations[0];
    assert_eq!(
        d.settings["secret"], "${secret:hook}",
        "left for the host to fill"
    );
    assert_eq!(d.secrets.names().collect::<Vec<_>>(), ["hook"]);
    assert_eq!(
        format!("{:?}", d.secrets),
        r#"["hook"]"#,
        "no value in Debug"
    );

    for (secrets, settings, path, says) in [
        (
            r#"{ hook = { from = "file:key.txt", hosts = ["http://127.0.0.1:9999"] } }"#,
            r#"{ url = "http://x", secret = "${secret:other}" }"#,
            "destinations[0].settings.secret",
            "names no secret (declared: `hook`)",
        ),
        (
            r#"{ hook = { from = "env:SWITCHYARD_TEST_NO_SUCH_VAR", hosts = ["http://127.0.0.1:9999"] } }"#,
            "{}",
            "destinations[0].secrets.hook.from",
            "`SWITCHYARD_TEST_NO_SUCH_VAR` is not set",
        ),
        (
            r#"{ hook = { from = "vault:x", hosts = ["http://127.0.0.1:9999"] } }"#,
            "{}",
            "destinations[0].secrets.hook.from",
            "is not `env:NAME` or `file:PATH`",
        ),
        (
            r#"{ hook = { from = "file:key.txt", hosts = [] } }"#,
            "{}",
            "destinations[0].secrets.hook.hosts",
            "name the hosts",
        ),
        (
            r#"{ hook = { from = "file:key.txt", hosts = ["127.0.0.1"] } }"#,
            "{}",
            "destinations[0].secrets.hook.hosts[0]",
            "",
        ),
        (
            r#"{ hook = { from = "file:key.txt", hosts = ["http://127.0.0.1:9999", "https://*.vendor.com"] } }"#,
            "{}",
            "destinations[0].secrets.hook.hosts[1]",
            "`*.` entries are not accepted",
        ),
        (
            r#"{ Hook = { from = "file:key.txt", hosts = ["http://127.0.0.1:9999"] } }"#,
            "{}",
            "destinations[0].secrets.Hook",
            "lower-case",
        ),
    ] {
        let err = Config::parse(&with(secrets, settings), "x.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(path) && err.contains(says), "{secrets}: {err}");
    }
    std::fs::write(dir.path().join("key.txt"), "short").unwrap();
    let err = Config::parse(&good, "x.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("shorter than 8 characters"), "{err}");
}
