//! The grammar of one configuration file: Apache httpd 2.4's line syntax, with nom.
//!
//! A file is a sequence of logical lines. A physical line that ends in a backslash is
//! continued on the next one (the backslash and the newline disappear, as in Apache's
//! `ap_cfg_getline`). Each logical line is blank, a `#` comment (only at the start of a
//! line: Apache has no end-of-line comments), a section opening `<Name args>`, a section
//! closing `</Name>`, or a directive `Name args`. Arguments are separated by blanks and
//! may be `"double"` or `'single'` quoted; inside quotes a backslash escapes the quote
//! character (Apache's `ap_getword_conf`). Unlike Apache, an unterminated quote is an
//! error instead of silently running to the end of the line.
//!
//! Every word keeps its line and column (1-based, counted in characters) so diagnostics
//! can point at it, even across continuation lines.

use nom::branch::alt;
use nom::bytes::complete::{take_till1, take_while};
use nom::character::complete::{char, satisfy};
use nom::combinator::recognize;
use nom::sequence::pair;
use nom::IResult;

/// A position in a file: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// One word of a line: a directive or section name, or an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The text with quotes removed and escaped quotes resolved.
    pub text: String,
    pub pos: Pos,
    pub quoted: bool,
}

/// What a logical line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    Directive { name: Word, args: Vec<Word> },
    Open { name: Word, args: Vec<Word> },
    Close { name: Word },
}

/// A logical line that is not blank or a comment, with the position it starts at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    pub pos: Pos,
    /// The line has a `$` somewhere (so perhaps a `${VAR}` to substitute): one search
    /// per line rather than one per word.
    pub dollar: bool,
}

/// A syntax error at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// The longest logical line accepted. Apache reads lines of at most 8 KiB
/// (`MAX_STRING_LEN`); we allow 1 MiB, and a longer line is one error, not a hang.
pub const MAX_LINE: usize = 1024 * 1024;

/// Parses a whole file into its significant lines, collecting every syntax error.
pub fn parse_file(text: &str) -> (Vec<Line>, Vec<SyntaxError>) {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for_each_line(text, |item| match item {
        Ok(line) => lines.push(line),
        Err(e) => errors.push(e),
    });
    (lines, errors)
}

/// Below this size a file is parsed on the calling thread alone.
const PARALLEL_MIN: usize = 512 * 1024;

/// Parses a file line by line, handing each significant line (or syntax error) to `f` in
/// file order. A large file is cut at line boundaries into one piece per CPU: the calling
/// thread parses the first piece and streams it to `f` while other threads parse the
/// rest, whose lines follow in order.
pub fn for_each_line(text: &str, f: impl FnMut(Result<Line, SyntaxError>)) {
    for_each_line_mapped(text, || |item| item, f);
}

/// [`for_each_line`], with each item converted on the thread that parsed it (the caller's
/// conversion of lines into its own types runs in parallel too) by a converter that
/// `new_map` makes for each thread (so threads need not share, say, a reference count).
pub fn for_each_line_mapped<T: Send, M: FnMut(Result<Line, SyntaxError>) -> T>(
    text: &str,
    new_map: impl Fn() -> M + Sync,
    mut f: impl FnMut(T),
) {
    let pieces = split_for_threads(text);
    if pieces.len() == 1 {
        let mut map = new_map();
        return lines_from(text, 1, |item| f(map(item)));
    }
    let new_map = &new_map;
    std::thread::scope(|scope| {
        let workers: Vec<_> = pieces[1..]
            .iter()
            .map(|&(piece, first_line)| {
                scope.spawn(move || {
                    let mut map = new_map();
                    // At most one item per line: sized once rather than regrown (and
                    // copied) a dozen times.
                    let lines = memchr::memchr_iter(b'\n', piece.as_bytes()).count() + 1;
                    let mut items = Vec::with_capacity(lines);
                    lines_from(piece, first_line, |item| items.push(map(item)));
                    items
                })
            })
            .collect();
        let mut map = new_map();
        lines_from(pieces[0].0, 1, |item| f(map(item)));
        for worker in workers {
            match worker.join() {
                Ok(items) => items.into_iter().for_each(&mut f),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
}

/// Cuts `text` into up to one piece per CPU, each with the file line it starts on. A cut
/// falls just after a newline that ends a logical line (not one continued by a
/// backslash), so no piece starts inside a directive.
fn split_for_threads(text: &str) -> Vec<(&str, u32)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || text.len() < PARALLEL_MIN {
        return vec![(text, 1)];
    }
    let bytes = text.as_bytes();
    let mut pieces = Vec::with_capacity(threads);
    let (mut start, mut line) = (0usize, 1u32);
    for i in 1..threads {
        let mut at = (bytes.len() * i / threads).max(start);
        let cut = loop {
            let Some(nl) = memchr::memchr(b'\n', &bytes[at..]).map(|n| at + n) else {
                break None;
            };
            let before = &bytes[start..nl];
            let before = before.strip_suffix(b"\r").unwrap_or(before);
            if before.last() != Some(&b'\\') {
                break Some(nl + 1);
            }
            at = nl + 1;
        };
        let Some(cut) = cut else { break };
        pieces.push((&text[start..cut], line));
        line += memchr::memchr_iter(b'\n', &bytes[start..cut]).count() as u32;
        start = cut;
    }
    pieces.push((&text[start..], line));
    pieces
}

/// Parses `text`, whose first line is line `first_line` of its file.
fn lines_from(text: &str, first_line: u32, mut f: impl FnMut(Result<Line, SyntaxError>)) {
    let mut pending: Option<Logical<'_>> = None;
    // Physical lines, cut with the memchr crate's vectorised search (str::split's is
    // scalar, and finding newlines was a tenth of parsing).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for (idx, end) in ends.enumerate() {
        let raw = &text[start..end];
        start = end + 1;
        let pos = Pos {
            line: first_line + idx as u32,
            column: 1,
        };
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (body, continued) = match raw.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        let logical = match pending.take() {
            None => Logical {
                text: std::borrow::Cow::Borrowed(body),
                first: pos,
                more: Vec::new(),
                ascii: false,
                dollar: false,
            },
            Some(mut prev) => {
                let start = prev.text.len();
                prev.text.to_mut().push_str(body);
                prev.more.push((start, pos));
                prev
            }
        };
        if continued {
            pending = Some(logical);
        } else {
            let mut logical = logical;
            handle(&mut logical, &mut f);
        }
    }
    if let Some(mut last) = pending {
        handle(&mut last, &mut f);
    }
}

fn handle(logical: &mut Logical<'_>, f: &mut impl FnMut(Result<Line, SyntaxError>)) {
    logical.ascii = logical.text.is_ascii();
    logical.dollar = memchr::memchr(b'$', logical.text.as_bytes()).is_some();
    if logical.text.len() > MAX_LINE {
        f(Err(SyntaxError {
            pos: logical.pos_at(0),
            message: format!(
                "line is {} bytes long; the limit is {MAX_LINE}",
                logical.text.len()
            ),
        }));
        return;
    }
    match parse_line(logical) {
        Ok(Some(line)) => f(Ok(line)),
        Ok(None) => {}
        Err(e) => f(Err(e)),
    }
}

/// A logical line: the joined text and where each physical piece started.
struct Logical<'a> {
    text: std::borrow::Cow<'a, str>,
    /// Where the first physical line starts (byte 0 of `text`).
    first: Pos,
    /// For continuation lines: (byte offset in `text`, position in the file of that byte).
    more: Vec<(usize, Pos)>,
    /// The text is all ASCII, so a column is a byte offset.
    ascii: bool,
    /// The text has a `$` ([`Line::dollar`]).
    dollar: bool,
}

impl Logical<'_> {
    /// The file position of byte `offset` of the joined text.
    fn pos_at(&self, offset: usize) -> Pos {
        let (start, pos) = match self.more.partition_point(|(start, _)| *start <= offset) {
            0 => (0, self.first),
            i => self.more[i - 1],
        };
        let piece = &self.text[start..offset];
        // Columns count characters; in ASCII text (nearly every config) that is bytes.
        let chars = if self.ascii {
            piece.len()
        } else {
            piece.chars().count()
        } as u32;
        Pos {
            line: pos.line,
            column: pos.column + chars,
        }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0b' || c == '\x0c'
}

// Words are cut on bytes: every delimiter (blanks, quotes, backslash) is ASCII, so a
// cut never falls inside a UTF-8 character, and bytes need no decoding.

fn is_blank_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c)
}

fn blanks(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_blank_byte)(input)
}

/// `s` without its leading blanks.
fn skip_blanks(s: &str) -> &str {
    let (_, skipped) = blanks(s.as_bytes()).expect("blanks never fails");
    &s[skipped.len()..]
}

/// A bare word: everything up to the next blank.
fn bare(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_till1(is_blank_byte)(input)
}

/// The raw text of a quoted word, opening quote included, up to and including the
/// closing quote. A backslash escapes the character after it.
fn quoted(quote: u8) -> impl Fn(&[u8]) -> IResult<&[u8], &[u8]> {
    move |input: &[u8]| {
        let (rest, _) = char(quote as char)(input)?;
        let mut from = 0;
        while let Some(found) = memchr::memchr2(quote, b'\\', &rest[from..]) {
            let at = from + found;
            if rest[at] == quote {
                let end = 1 + at + 1;
                return Ok((&input[end..], &input[..end]));
            }
            from = at + 2;
            if from >= rest.len() {
                break;
            }
        }
        Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Char,
        )))
    }
}

/// One argument, raw (still quoted).
fn word(input: &[u8]) -> IResult<&[u8], &[u8]> {
    alt((quoted(b'"'), quoted(b'\''), bare))(input)
}

/// The name after `<` or `</`: letters, digits, `_`, `-`, `:`.
fn section_name(input: &str) -> IResult<&str, &str> {
    recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic()),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':'),
    ))(input)
}

/// Resolves a raw word to its text: strips the quotes and unescapes `\"` (or `\'`).
fn unquote(raw: &str) -> (String, bool) {
    let Some(q) = raw.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return (raw.to_string(), false);
    };
    if raw.len() < 2 || !raw.ends_with(q) {
        return (raw.to_string(), false);
    }
    let inner = &raw[1..raw.len() - 1];
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return (inner.to_string(), true);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&q) {
            out.push(q);
            chars.next();
        } else {
            out.push(c);
        }
    }
    (out, true)
}

/// Splits `input` (which starts at byte `base` of the logical line) into words.
fn words(line: &Logical<'_>, base: usize, input: &str) -> Result<Vec<Word>, SyntaxError> {
    let mut out = Vec::with_capacity(4);
    let bytes = input.as_bytes();
    let mut rest = bytes;
    loop {
        let (r, _) = blanks(rest).expect("blanks never fails");
        rest = r;
        if rest.is_empty() {
            return Ok(out);
        }
        let start = bytes.len() - rest.len();
        let offset = base + start;
        match word(rest) {
            Ok((r, raw)) => {
                let (text, quoted) = unquote(&input[start..start + raw.len()]);
                out.push(Word {
                    text,
                    pos: line.pos_at(offset),
                    quoted,
                });
                rest = r;
            }
            Err(_) => {
                return Err(SyntaxError {
                    pos: line.pos_at(offset),
                    message: format!(
                        "unterminated quote: {} opened here is never closed on this line",
                        &input[start..start + 1]
                    ),
                })
            }
        }
    }
}

/// Parses one logical line; `Ok(None)` for blanks and comments.
fn parse_line(line: &Logical<'_>) -> Result<Option<Line>, SyntaxError> {
    let text: &str = &line.text;
    let rest = skip_blanks(text);
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let start = text.len() - rest.len();
    let pos = line.pos_at(start);
    if let Some(after) = rest.strip_prefix('<') {
        let (after, closing) = match after.strip_prefix('/') {
            Some(a) => (a, true),
            None => (after, false),
        };
        let name_offset = text.len() - after.len();
        let (after_name, name) = section_name(after).map_err(|_| SyntaxError {
            pos: line.pos_at(name_offset),
            message: "expected a section name after '<'".into(),
        })?;
        let name = Word {
            text: name.to_string(),
            pos: line.pos_at(name_offset),
            quoted: false,
        };
        // The section's arguments run up to the last '>' on the line (Apache strips it).
        let body_offset = text.len() - after_name.len();
        let trimmed = after_name.trim_end_matches(is_blank);
        let Some(inner) = trimmed.strip_suffix('>') else {
            return Err(SyntaxError {
                pos: line.pos_at(start),
                message: format!(
                    "<{}{}> is missing its closing '>'",
                    if closing { "/" } else { "" },
                    name.text
                ),
            });
        };
        if !after_name.is_empty()
            && !after_name.starts_with(is_blank)
            && !after_name.starts_with('>')
        {
            return Err(SyntaxError {
                pos: line.pos_at(body_offset),
                message: format!("unexpected character after section name <{}", name.text),
            });
        }
        let args = words(line, body_offset, inner)?;
        if closing {
            if let Some(extra) = args.first() {
                return Err(SyntaxError {
                    pos: extra.pos,
                    message: format!("</{}> takes no arguments", name.text),
                });
            }
            return Ok(Some(Line {
                kind: LineKind::Close { name },
                pos,
                dollar: line.dollar,
            }));
        }
        return Ok(Some(Line {
            kind: LineKind::Open { name, args },
            pos,
            dollar: line.dollar,
        }));
    }
    let mut all = words(line, start, rest)?;
    let name = all.remove(0);
    Ok(Some(Line {
        kind: LineKind::Directive { name, args: all },
        pos,
        dollar: line.dollar,
    }))
}

#[cfg(test)]
mod tests;
