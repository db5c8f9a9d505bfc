use super::*;

fn words_of(line: &Line) -> Vec<String> {
    match &line.kind {
        LineKind::Directive { name, args } | LineKind::Open { name, args } => {
            std::iter::once(name.text.clone())
                .chain(args.iter().map(|a| a.text.clone()))
                .collect()
        }
        LineKind::Close { name } => vec![format!("/{}", name.text)],
    }
}

#[test]
fn lines_and_words() {
    let cases: &[(&str, &[&str])] = &[
        ("Listen 80", &["Listen", "80"]),
        (
            "  ServerName   example.com  ",
            &["ServerName", "example.com"],
        ),
        (
            "Header set X-A \"a b \\\"c\\\"\"",
            &["Header", "set", "X-A", "a b \"c\""],
        ),
        ("LogFormat '%h %l' x", &["LogFormat", "%h %l", "x"]),
        ("DocumentRoot \"\"", &["DocumentRoot", ""]),
        ("<Directory \"/var/www\">", &["Directory", "/var/www"]),
        ("<IfModule !mod_ssl.c>", &["IfModule", "!mod_ssl.c"]),
        ("</Directory>", &["/Directory"]),
        (
            "<VirtualHost *:80 [::1]:80>",
            &["VirtualHost", "*:80", "[::1]:80"],
        ),
        ("Path C:\\dir\\x", &["Path", "C:\\dir\\x"]),
    ];
    for (text, want) in cases {
        let (lines, errors) = parse_file(text);
        assert!(errors.is_empty(), "{text}: {errors:?}");
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(&words_of(&lines[0]), want, "{text}");
    }
}

#[test]
fn comments_and_blanks_are_skipped() {
    let (lines, errors) = parse_file("# a comment\n\n   \t\n  # indented\nKeepAlive On\n");
    assert!(errors.is_empty());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].pos, Pos { line: 5, column: 1 });
}

#[test]
fn continuation_joins_lines_and_keeps_positions() {
    let text = "LogFormat \"%h \\\n%l\" \\\n    common\nNext 1\n";
    let (lines, errors) = parse_file(text);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(words_of(&lines[0]), ["LogFormat", "%h %l", "common"]);
    let LineKind::Directive { args, .. } = &lines[0].kind else {
        panic!()
    };
    assert_eq!(args[1].pos, Pos { line: 3, column: 5 });
    assert_eq!(lines[1].pos, Pos { line: 4, column: 1 });
}

#[test]
fn columns_count_characters() {
    let (lines, _) = parse_file("  Alias /é/ \"/srv/ü\"");
    let LineKind::Directive { name, args } = &lines[0].kind else {
        panic!()
    };
    assert_eq!(name.pos.column, 3);
    assert_eq!(args[0].pos.column, 9);
    assert_eq!(args[1].pos.column, 13);
}

#[test]
fn errors_are_located() {
    let cases: &[(&str, Pos, &str)] = &[
        (
            "Header set X \"open",
            Pos {
                line: 1,
                column: 14,
            },
            "unterminated quote",
        ),
        (
            "<Directory /x",
            Pos { line: 1, column: 1 },
            "missing its closing '>'",
        ),
        ("<>", Pos { line: 1, column: 2 }, "expected a section name"),
        (
            "</Directory extra>",
            Pos {
                line: 1,
                column: 13,
            },
            "takes no arguments",
        ),
    ];
    for (text, pos, msg) in cases {
        let (_, errors) = parse_file(text);
        assert_eq!(errors.len(), 1, "{text}");
        assert_eq!(errors[0].pos, *pos, "{text}");
        assert!(
            errors[0].message.contains(msg),
            "{text}: {}",
            errors[0].message
        );
    }
}

#[test]
fn crlf_and_junk_do_not_panic() {
    let (lines, _) = parse_file("KeepAlive On\r\nTimeout 5\r\n");
    assert_eq!(words_of(&lines[1]), ["Timeout", "5"]);
    let junk: String = (0u8..=255).map(|b| b as char).collect();
    let _ = parse_file(&junk);
    let _ = parse_file("\\");
    let _ = parse_file("<");
    let _ = parse_file("\"");
}

#[test]
fn a_large_file_parses_the_same_in_pieces_as_in_one() {
    // Continuations, CRLF, quotes, errors and non-ASCII text spread through a file big
    // enough to be cut into pieces for several threads.
    let mut text = String::new();
    for i in 0..80_000 {
        match i % 7 {
            0 => text.push_str(&format!("<VirtualHost *:80>\n  ServerName s{i}.example\n")),
            1 => text.push_str("  Header set X-A \\\n     \"b c\" \\\n  d\n"),
            2 => text.push_str("  # comment \\\n\r\n"),
            3 => text.push_str(&format!("  Alias /é{i}/ \"/srv/ü\"\r\n")),
            4 => text.push_str("  Broken \"unterminated\n"),
            5 => text.push_str("</VirtualHost>\n\n"),
            _ => text.push_str("Define X\\\n"),
        }
    }
    assert!(text.len() > 2 * super::PARALLEL_MIN);
    let mut whole = Vec::new();
    super::lines_from(&text, 1, |item| whole.push(item));
    let mut pieces = Vec::new();
    super::for_each_line(&text, |item| pieces.push(item));
    assert_eq!(whole.len(), pieces.len());
    assert!(whole == pieces, "parsing in pieces changed the result");
    let cuts = super::split_for_threads(&text);
    let joined: String = cuts.iter().map(|(piece, _)| *piece).collect();
    assert_eq!(joined, text);
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(cuts.len() > 1, "the file was not cut");
    }
}
