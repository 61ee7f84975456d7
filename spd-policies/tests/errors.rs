//! Each kind of mistake yields an error whose kind, field, line and column are checked.
//! Every case is the same small valid file with one mistake spliced in at line 5 or later.

use spd_policies::{load, Error};

const HEAD: &str = "version = 1\nrole = \"home-agent\"\nhome_agent = \"2001:db8:1::1\"\nhome_agent_v4 = \"192.0.2.1\"\n";
const MN: &str = "[[mobile_node]]\nname = \"mn1\"\nidentity = \"u1@example.com\"\nhome_address = \"2001:db8:1::100\"\n";

fn errors(body: &str) -> Vec<Error> {
    let text = format!("{HEAD}{body}");
    match load("p.toml", &text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// The first error, checked for kind, field, line and column.
fn expect(body: &str, kind: fn(&Error) -> bool, field: &str, line: usize, col: usize) -> Error {
    let errs = errors(body);
    let e = errs[0].clone();
    assert!(kind(&e), "unexpected kind: {e}");
    assert_eq!(e.field(), field, "{e}");
    let at = e.loc().expect("located");
    assert_eq!(
        (at.file.as_str(), at.line, at.col),
        ("p.toml", line, col),
        "{e}"
    );
    // The message carries the place, as the CLI prints it.
    assert!(
        e.to_string().starts_with(&format!("p.toml:{line}:{col}: ")),
        "{e}"
    );
    e
}

fn rule(lines: &str) -> String {
    format!("{MN}[[rule]]\nname = \"r\"\n{lines}")
}

// The first rule line (after MN's 4 lines, `[[rule]]` and `name`) is line 11.

#[test]
fn toml_syntax() {
    let e = expect(
        "[[rule]]\nname = \"unterminated\n",
        |e| matches!(e, Error::Syntax { .. }),
        "",
        6,
        21,
    );
    assert!(e.to_string().contains("TOML syntax"));
}

#[test]
fn misspelt_top_level_key() {
    let e = expect(
        "mobile_nodes = 3\n",
        |e| matches!(e, Error::UnknownKey { .. }),
        "mobile_nodes",
        5,
        1,
    );
    assert!(e.to_string().contains("did you mean `mobile_node`"), "{e}");
}

#[test]
fn misspelt_rule_key() {
    let e = expect(
        &rule("protocl = \"MH\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownKey { .. }),
        "rule[0].protocl",
        11,
        1,
    );
    assert!(e.to_string().contains("did you mean `protocol`"), "{e}");
}

#[test]
fn missing_action() {
    expect(
        &rule("protocol = \"MH\"\n"),
        |e| matches!(e, Error::Missing { .. }),
        "rule[0].action",
        9,
        1,
    );
}

#[test]
fn wrong_value_type() {
    expect(
        &rule("protocol = \"UDP\"\nlocal_port = true\naction = \"bypass\"\n"),
        |e| matches!(e, Error::WrongType { .. }),
        "rule[0].local_port",
        12,
        14,
    );
}

#[test]
fn unsupported_version() {
    let text = "version = 2\nrole = \"home-agent\"\n";
    let e = load("p.toml", text).unwrap_err()[0].clone();
    assert!(matches!(e, Error::BadVersion { value: 2, .. }), "{e}");
    assert_eq!(e.loc().map(|l| (l.line, l.col)), Some((1, 11)));
}

#[test]
fn unknown_role() {
    let text = "version = 1\nrole = \"router\"\n";
    let e = load("p.toml", text).unwrap_err()[0].clone();
    assert!(matches!(e, Error::UnknownName { .. }), "{e}");
    assert_eq!(
        (e.field(), e.loc().map(|l| (l.line, l.col))),
        ("role", Some((2, 8)))
    );
}

#[test]
fn unknown_protocol() {
    expect(
        &rule("protocol = \"MHH\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownProtocol { .. }),
        "rule[0].protocol",
        11,
        12,
    );
}

#[test]
fn unknown_mh_type() {
    expect(
        &rule("protocol = \"MH\"\nlocal_mh_type = \"BindingUpdate\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownMhType { .. }),
        "rule[0].local_mh_type",
        12,
        17,
    );
}

#[test]
fn mh_type_without_mh() {
    let e = expect(
        &rule("protocol = \"UDP\"\nremote_mh_type = \"BU\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::MhTypeWithoutMh { .. }),
        "rule[0].remote_mh_type",
        12,
        18,
    );
    assert!(e.to_string().contains("protocol UDP"), "{e}");
}

#[test]
fn ports_on_a_protocol_without_ports() {
    expect(
        &rule("protocol = \"MH\"\nlocal_port = 80\naction = \"bypass\"\n"),
        |e| matches!(e, Error::PortsWithoutPorts { .. }),
        "rule[0].local_port",
        12,
        14,
    );
}

#[test]
fn ports_without_a_protocol() {
    expect(
        &rule("remote_port = 80\naction = \"bypass\"\n"),
        |e| matches!(e, Error::PortsWithoutPorts { .. }),
        "rule[0].remote_port",
        11,
        15,
    );
}

#[test]
fn reversed_port_range() {
    expect(
        &rule("protocol = \"TCP\"\nlocal_port = \"90-80\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::BadPort { .. }),
        "rule[0].local_port",
        12,
        14,
    );
}

#[test]
fn port_out_of_range() {
    expect(
        &rule("protocol = \"TCP\"\nremote_port = 70000\naction = \"bypass\"\n"),
        |e| matches!(e, Error::BadPort { .. }),
        "rule[0].remote_port",
        12,
        15,
    );
}

#[test]
fn prefix_too_long() {
    expect(
        &rule("remote = \"2001:db8::/129\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::BadAddress { .. }),
        "rule[0].remote",
        11,
        10,
    );
}

#[test]
fn prefix_with_host_bits() {
    let e = expect(
        &rule("local = \"192.0.2.1/24\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::BadAddress { .. }),
        "rule[0].local",
        11,
        9,
    );
    assert!(e.to_string().contains("192.0.2.0/24"), "{e}");
}

#[test]
fn unknown_symbol() {
    let e = expect(
        &rule("local = \"home_adress\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownSymbol { .. }),
        "rule[0].local",
        11,
        9,
    );
    assert!(e.to_string().contains("did you mean `home_address`"), "{e}");
}

#[test]
fn duplicate_rule_name() {
    let body = format!("{MN}[[rule]]\nname = \"r\"\naction = \"bypass\"\n\n[[rule]]\nname = \"r\"\naction = \"discard\"\n");
    let e = expect(
        &body,
        |e| matches!(e, Error::Duplicate { .. }),
        "rule[1].name",
        14,
        8,
    );
    assert!(e.to_string().contains("first used at p.toml:10:8"), "{e}");
}

#[test]
fn duplicate_mobile_node() {
    let body = format!("{MN}{MN}");
    expect(
        &body,
        |e| matches!(e, Error::Duplicate { .. }),
        "mobile_node[1].name",
        10,
        8,
    );
}

#[test]
fn unknown_action() {
    expect(
        &rule("action = \"encrypt\"\n"),
        |e| matches!(e, Error::UnknownName { .. }),
        "rule[0].action",
        11,
        10,
    );
}

#[test]
fn unknown_direction() {
    expect(
        &rule("direction = \"sideways\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownName { .. }),
        "rule[0].direction",
        11,
        13,
    );
}

#[test]
fn mode_on_bypass() {
    expect(
        &rule("action = \"bypass\"\nmode = \"tunnel\"\n"),
        |e| matches!(e, Error::OnlyForProtect { .. }),
        "rule[0].mode",
        12,
        1,
    );
}

#[test]
fn protect_without_mode() {
    expect(
        &rule("action = \"protect\"\n"),
        |e| matches!(e, Error::Missing { .. }),
        "rule[0].mode",
        9,
        1,
    );
}

#[test]
fn families_that_never_meet() {
    let e = expect(
        &rule("local = \"home_agent_v4\"\nremote = \"home_address\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::FamilyMismatch { .. }),
        "rule[0].remote",
        12,
        10,
    );
    assert!(e.to_string().contains("IPv4 vs IPv6"), "{e}");
}

#[test]
fn unknown_icmp_type() {
    expect(
        &rule("protocol = \"ICMPv6\"\nlocal_icmp_type = \"echo\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::UnknownIcmpType { .. }),
        "rule[0].local_icmp_type",
        12,
        19,
    );
}

#[test]
fn icmp_type_without_icmp() {
    expect(
        &rule("protocol = \"MH\"\nlocal_icmp_type = \"echo-request\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::IcmpTypeWithoutIcmp { .. }),
        "rule[0].local_icmp_type",
        12,
        19,
    );
}

#[test]
fn empty_pool() {
    expect(
        "[[pool]]\nname = \"p\"\ncount = 0\n",
        |e| matches!(e, Error::BadPool { .. }),
        "pool[0].count",
        7,
        9,
    );
}

#[test]
fn pool_past_the_address_space() {
    expect(
        "[[pool]]\nname = \"p\"\ncount = 10\nfirst_home_address_v4 = \"255.255.255.250\"\n",
        |e| matches!(e, Error::BadPool { .. }),
        "pool[0].first_home_address_v4",
        8,
        25,
    );
}

#[test]
fn unknown_template_placeholder() {
    let e = expect(
        &rule("action = \"protect\"\nmode = \"tunnel\"\npeer_id = \"{user}\"\n"),
        |e| matches!(e, Error::BadTemplate { .. }),
        "rule[0].peer_id",
        13,
        11,
    );
    assert!(e.to_string().contains("{identity}"), "{e}");
}

#[test]
fn wrong_family_for_a_binding() {
    expect(
        "[[mobile_node]]\nname = \"m\"\nhome_address = \"198.51.100.1\"\n",
        |e| matches!(e, Error::BadAddress { .. }),
        "mobile_node[0].home_address",
        7,
        16,
    );
}

#[test]
fn bad_name() {
    expect(
        &format!("{MN}[[rule]]\nname = \"has space\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::BadName { .. }),
        "rule[0].name",
        10,
        8,
    );
}

#[test]
fn unbound_symbol_for_a_node() {
    // Parsing succeeds; binding fails: mn1 has no care-of address.
    expect(
        &rule("remote = \"care_of_address\"\naction = \"bypass\"\n"),
        |e| matches!(e, Error::Unbound { .. }),
        "rule[0].remote",
        11,
        10,
    );
}

#[test]
fn mobile_node_role_with_two_nodes() {
    let text =
        format!("version = 1\nrole = \"mobile-node\"\n{MN}[[mobile_node]]\nname = \"mn2\"\n");
    let e = load("p.toml", &text).unwrap_err()[0].clone();
    assert!(matches!(e, Error::Role { .. }), "{e}");
    assert_eq!(e.loc().map(|l| (l.line, l.col)), Some((2, 8)));
}

#[test]
fn several_mistakes_are_all_reported_in_order() {
    let errs = errors(&rule(
        "protocol = \"MHH\"\naction = \"encrypt\"\nlocal = \"nowhere\"\n",
    ));
    let lines: Vec<usize> = errs.iter().map(|e| e.loc().unwrap().line).collect();
    assert_eq!(lines, vec![11, 12, 13]);
}
