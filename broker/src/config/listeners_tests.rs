//! Parsing and checking of the listener settings, and the flags that go with them.

use super::*;
use crate::config::ssl::{client_auth_by_listener, SslClientAuth};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: crate::config::BrokerConfig,
}

fn resolve3(l: &str, a: &str, m: &str) -> Result<Listeners, ListenerError> {
    resolve(&ListenerSettings {
        listeners: l,
        advertised: a,
        protocol_map: m,
    })
}

#[test]
fn protocols_read_kafkas_names() {
    for p in SecurityProtocol::ALL {
        assert_eq!(p.name().parse::<SecurityProtocol>().unwrap(), p);
    }
    assert_eq!(
        "sasl_ssl".parse::<SecurityProtocol>().unwrap(),
        SecurityProtocol::SaslSsl
    );
    assert!(SecurityProtocol::SaslSsl.is_tls() && SecurityProtocol::SaslSsl.is_sasl());
    assert!(SecurityProtocol::Ssl.is_tls() && !SecurityProtocol::Ssl.is_sasl());
    assert!(!SecurityProtocol::SaslPlaintext.is_tls());
    assert!(!SecurityProtocol::Plaintext.is_tls() && !SecurityProtocol::Plaintext.is_sasl());
    let err = "TLS".parse::<SecurityProtocol>().unwrap_err();
    assert!(err.to_string().contains("\"TLS\""), "{err}");
}

#[test]
fn endpoints_parse_names_hosts_and_ports() {
    let e = Endpoint::parse("client://broker-0.svc:9092").unwrap();
    assert_eq!(
        (e.name.as_str(), e.host.as_str(), e.port),
        ("CLIENT", "broker-0.svc", 9092)
    );
    let e = Endpoint::parse("SSL://:9093").unwrap();
    assert_eq!((e.host.as_str(), e.port), ("", 9093));
    let e = Endpoint::parse("V6://[::1]:9094").unwrap();
    assert_eq!(e.host, "::1");
    assert_eq!(e.to_string(), "V6://[::1]:9094");
    for bad in [
        "broker:9092",
        "PLAINTEXT://broker",
        "PLAINTEXT://broker:70000",
        "://broker:1",
        "A B://h:1",
        "V6://::1:9094",
        "V6://[::1:9094",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn kafkas_default_map_names_each_protocol_after_itself() {
    let l = resolve3(
        "PLAINTEXT://127.0.0.1:9092, SSL://:9093,sasl_ssl://0.0.0.0:9094",
        "",
        "",
    )
    .unwrap();
    let got: Vec<_> = l
        .iter()
        .map(|l| (l.name.as_str(), l.protocol, l.bind_address()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "PLAINTEXT",
                SecurityProtocol::Plaintext,
                "127.0.0.1:9092".into()
            ),
            ("SSL", SecurityProtocol::Ssl, "0.0.0.0:9093".into()),
            ("SASL_SSL", SecurityProtocol::SaslSsl, "0.0.0.0:9094".into()),
        ]
    );
    // Not advertised: clients are told the bind address.
    assert_eq!(l.first().advertised_host, "127.0.0.1");
    assert_eq!(l.first().advertised_port, 9092);
}

#[test]
fn a_given_map_and_advertised_listeners_are_joined_by_name() {
    let l = resolve3(
        "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094",
        "EXTERNAL://public.example:19094,internal://b-0.svc:9092",
        "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
    )
    .unwrap();
    let ext = l.get(&ListenerName::parse("external").unwrap()).unwrap();
    assert_eq!(ext.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(
        (ext.advertised_host.as_str(), ext.advertised_port),
        ("public.example", 19094)
    );
    let int = l.first();
    assert_eq!(
        (int.name.as_str(), int.advertised_host.as_str()),
        ("INTERNAL", "b-0.svc")
    );
}

#[test]
fn inconsistent_settings_are_refused_by_name() {
    let err = |l: &str, a: &str, m: &str| resolve3(l, a, m).unwrap_err().to_string();
    assert_eq!(
        err("", "", ""),
        "--listeners is empty: at least one listener is needed"
    );
    assert_eq!(
        err("A://:1,a://:2", "", "A:SSL"),
        "--listeners names listener A twice"
    );
    assert_eq!(
        err("A://:9092,B://h:9092", "", "A:SSL,B:SSL"),
        "--listeners: listeners A and B both bind port 9092"
    );
    // Port 0: each gets its own free port.
    resolve3("A://:0,B://:0", "", "A:SSL,B:SSL").unwrap();
    assert_eq!(
        err("CLIENT://:9092", "", ""),
        "listener CLIENT has no security protocol in --listener-security-protocol-map"
    );
    assert_eq!(
        err("A://:1", "", "A:SSL,B:PLAINTEXT"),
        "--listener-security-protocol-map names listener B, which is not in --listeners"
    );
    assert_eq!(
        err("A://:1", "", "A:SSL,a:SSL"),
        "--listener-security-protocol-map names listener A twice"
    );
    assert!(err("A://:1", "", "A=SSL").contains("expected NAME:PROTOCOL"));
    assert!(err("A://:1", "", "A:TLS").contains("\"TLS\""));
    assert_eq!(
        err("SSL://:1", "PLAINTEXT://h:1", ""),
        "--advertised-listeners names listener PLAINTEXT, which is not in --listeners"
    );
    assert_eq!(
        err("SSL://:1", "SSL://h:1,SSL://g:1", ""),
        "--advertised-listeners names listener SSL twice"
    );
    for unroutable in ["SSL://0.0.0.0:1", "SSL://:1", "SSL://[::]:1"] {
        assert!(
            err("SSL://:1", unroutable, "").contains("cannot connect"),
            "{unroutable}"
        );
    }
}

#[test]
fn named_listeners_come_from_flags_and_the_shorthand_is_one_plaintext_listener() {
    let c = Cli::parse_from([
        "fjord",
        "--listeners",
        "PLAINTEXT://127.0.0.1:9092,SSL://:9093",
        "--advertised-listeners",
        "SSL://broker-0.svc:9093",
        "--ssl-keystore-location",
        "/etc/fjord/tls/broker.pem",
    ])
    .broker;
    c.validate().unwrap();
    let mut no_keystore = c.clone();
    no_keystore.ssl.ssl_keystore_location = None;
    assert_eq!(
        no_keystore.validate().unwrap_err(),
        "an SSL or SASL_SSL listener needs --ssl-keystore-location (PEM certificate chain)"
    );
    let mut no_truststore = c.clone();
    no_truststore.ssl.ssl_client_auth = SslClientAuth::Required;
    assert_eq!(
        no_truststore.validate().unwrap_err(),
        "--ssl-client-auth required needs --ssl-truststore-location (PEM CA certificates)"
    );
    let l = c.listeners().unwrap();
    let ssl = &l.0[1];
    assert_eq!(
        (ssl.name.as_str(), ssl.protocol),
        ("SSL", SecurityProtocol::Ssl)
    );
    assert_eq!(ssl.advertised_host, "broker-0.svc");
    assert_eq!(c.advertised(), ("127.0.0.1".to_string(), 9092));
    let short = Cli::parse_from([
        "fjord",
        "--kafka-listen",
        "0.0.0.0:19092",
        "--advertised-listener",
        "b.svc:19092",
    ])
    .broker;
    let l = short.listeners().unwrap();
    assert_eq!(l.0.len(), 1);
    assert_eq!(
        (l.first().name.as_str(), l.first().protocol),
        ("PLAINTEXT", SecurityProtocol::Plaintext)
    );
    assert_eq!(l.first().bind_address(), "0.0.0.0:19092");
    assert_eq!(short.advertised(), ("b.svc".to_string(), 19092));
    // --listeners wins over the shorthand's address (an image may set
    // FJORD_KAFKA_LISTEN); an advertised shorthand does not mix with it.
    let both = Cli::parse_from([
        "fjord",
        "--listeners",
        "SSL://127.0.0.1:9094",
        "--kafka-listen",
        "0.0.0.0:9092",
        "--ssl-keystore-location",
        "/k.pem",
    ])
    .broker;
    both.validate().unwrap();
    let l = both.listeners().unwrap();
    assert_eq!(l.0.len(), 1);
    assert_eq!(l.first().bind_address(), "127.0.0.1:9094");
    assert!(Cli::try_parse_from([
        "fjord",
        "--listeners",
        "PLAINTEXT://:9092",
        "--advertised-listener",
        "b:9092"
    ])
    .is_err());
    let unmapped = Cli::parse_from(["fjord", "--listeners", "CLIENT://:9092"]).broker;
    assert_eq!(
        unmapped.validate().unwrap_err(),
        "listener CLIENT has no security protocol in --listener-security-protocol-map"
    );
}

#[test]
fn client_auth_applies_to_ssl_listeners_and_sasl_ssl_only_by_name() {
    let l = resolve3(
        "PLAINTEXT://:1,SSL://:2,SASL_PLAINTEXT://:3,SASL_SSL://:4,SSLNOCERT://:5",
        "",
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,\
         SSLNOCERT:SSL",
    )
    .unwrap();
    let modes = |overrides: &str| {
        client_auth_by_listener(&l, SslClientAuth::Required, overrides).map(|m| {
            m.into_iter()
                .map(|(n, m)| format!("{n}:{}", m.name()))
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    assert_eq!(
        modes("").unwrap(),
        "SSL:required,SASL_SSL:none,SSLNOCERT:required"
    );
    assert_eq!(
        modes("SSLNOCERT:none").unwrap(),
        "SSL:required,SASL_SSL:none,SSLNOCERT:none"
    );
    assert_eq!(
        modes(" sasl_ssl:Requested , ssl:none").unwrap(),
        "SSL:none,SASL_SSL:requested,SSLNOCERT:required"
    );
    let err = |o: &str| modes(o).unwrap_err().to_string();
    assert_eq!(
        err("OTHER:none"),
        "--listener-ssl-client-auth names listener OTHER, which is not in --listeners"
    );
    assert_eq!(
        err("SASL_PLAINTEXT:required"),
        "--listener-ssl-client-auth names listener SASL_PLAINTEXT, which runs \
         SASL_PLAINTEXT: client certificates need an SSL or SASL_SSL listener"
    );
    assert_eq!(
        err("SSL:none,ssl:required"),
        "--listener-ssl-client-auth names listener SSL twice"
    );
    for bad in ["SSL", "SSL:optional", "SSL:"] {
        assert!(err(bad).contains("expected NAME:MODE"), "{bad}");
    }
}

#[test]
fn the_per_listener_flag_and_its_truststore_check() {
    let parse = |extra: &[&str]| {
        let mut args = vec![
            "fjord",
            "--listeners",
            "PLAINTEXT://127.0.0.1:29092,SSL://127.0.0.1:29093,\
             SASL_PLAINTEXT://127.0.0.1:29094,SASL_SSL://127.0.0.1:29095,\
             SSLNOCERT://127.0.0.1:29096",
            "--listener-security-protocol-map",
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,\
             SSLNOCERT:SSL",
            "--ssl-keystore-location",
            "/k.pem",
        ];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).map(|c| c.broker)
    };
    let c = parse(&[
        "--ssl-truststore-location",
        "/ca.pem",
        "--ssl-client-auth",
        "required",
        "--listener-ssl-client-auth",
        "SSLNOCERT:none",
    ])
    .unwrap();
    c.validate().unwrap();
    let modes = c
        .ssl
        .client_auth_by_listener(&c.listeners().unwrap())
        .unwrap();
    assert_eq!(
        modes.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        vec![
            SslClientAuth::Required,
            SslClientAuth::None,
            SslClientAuth::None
        ]
    );
    // Without a truststore: fine while no listener asks for certificates.
    let c = parse(&["--listener-ssl-client-auth", "SSL:none,SSLNOCERT:none"]).unwrap();
    c.validate().unwrap();
    let c = parse(&["--listener-ssl-client-auth", "SASL_SSL:requested"]).unwrap();
    assert_eq!(
        c.validate().unwrap_err(),
        "--listener-ssl-client-auth SASL_SSL:requested needs --ssl-truststore-location \
         (PEM CA certificates)"
    );
    let c = parse(&["--listener-ssl-client-auth", "PLAINTEXT:none"]).unwrap();
    assert!(c.validate().unwrap_err().contains("runs PLAINTEXT"));
    // Only SASL_SSL: the broker-wide mode does not apply to it.
    let c = Cli::parse_from([
        "fjord",
        "--listeners",
        "SASL_SSL://127.0.0.1:29095",
        "--ssl-keystore-location",
        "/k.pem",
        "--ssl-client-auth",
        "required",
    ])
    .broker;
    c.validate().unwrap();
}

#[test]
fn kernel_tls_is_auto_unless_turned_off() {
    use crate::config::ssl::SslKtls;
    let parse = |extra: &[&str]| {
        let mut args = vec!["fjord"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).map(|c| c.broker.ssl.ssl_ktls)
    };
    assert_eq!(parse(&[]).unwrap(), SslKtls::Auto);
    assert_eq!(parse(&["--ssl-ktls", "off"]).unwrap(), SslKtls::Off);
    assert_eq!(parse(&["--ssl-ktls", "auto"]).unwrap(), SslKtls::Auto);
    let err = parse(&["--ssl-ktls", "on"]).unwrap_err().to_string();
    assert!(
        err.contains("--ssl-ktls") && err.contains("auto, off"),
        "{err}"
    );
}
