//! The xl.cfg language: settings of strings, numbers and lists, as Xen's
//! libxlutil reads them.
//!
//! Grammar (Xen 4.17 `tools/libs/util/libxlu_cfg_y.y`, `libxlu_cfg_l.l`):
//! `setting := IDENT ('=' | '+=') value (NEWLINE | ';')`, blank statements
//! allowed; `value := STRING | NUMBER | '[' (value (',' value)* ','?)? ']'`
//! where lists nest and may span lines; `IDENT := [a-zA-Z_][a-zA-Z0-9_.]*`;
//! `NUMBER := [0-9][0-9a-fA-Fx]*`, read like `strtol(s, 0)` (0x hex,
//! leading-0 octal); `STRING := '…' | "…"` with backslash escapes; `#`
//! to the end of the line is a comment; a backslash before a newline
//! continues the line. A later setting of the same name replaces an
//! earlier one (so `KEY=VALUE` overrides after the file win); `+=`
//! appends to a list, or to a string.
//!
//! Errors name the source, line and column and the token they were found
//! near, like libxlutil's `config parsing error near ...`.

use std::fmt;

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A quoted string, unescaped.
    Str(String),
    /// A number token, as written (see [`Value::number`]).
    Num(String),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// The value as an integer: a number token or a string holding one,
    /// read like `strtol(s, &end, 0)` with nothing left over.
    pub fn number(&self) -> Option<i64> {
        match self {
            Value::Num(s) | Value::Str(s) => parse_c_number(s),
            Value::List(_) => None,
        }
    }

    /// The value as a string: a string, or a number's text.
    pub fn string(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Num(s) => Some(s),
            Value::List(_) => None,
        }
    }
}

/// `strtol(s, &end, 0)` that must consume all of `s` (after blanks).
pub fn parse_c_number(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<i64>().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit()))?
    };
    Some(if neg { -v } else { v })
}

/// One setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// Where it was set: source name and line.
    pub at: (String, usize),
}

/// A parsed configuration: settings in order, the last of a name wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    settings: Vec<Setting>,
}

/// A syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The source (file name, or `command line`).
    pub source: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// The text of the token it was found near.
    pub near: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: config parsing error near ", self.source, self.line, self.column)?;
        if self.near.is_empty() {
            write!(f, "end of line: {}", self.message)
        } else {
            write!(f, "`{}': {}", self.near, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Num(String),
    Str(String),
    Assign,
    Append,
    Open,
    Close,
    Comma,
    End, // newline or ';'
    Eof,
}

impl Tok {
    fn describe(&self) -> &'static str {
        match self {
            Tok::Ident(_) => "IDENT",
            Tok::Num(_) => "NUMBER",
            Tok::Str(_) => "STRING",
            Tok::Assign => "'='",
            Tok::Append => "'+='",
            Tok::Open => "'['",
            Tok::Close => "']'",
            Tok::Comma => "','",
            Tok::End => "NEWLINE",
            Tok::Eof => "end of file",
        }
    }
}

/// A token with its position and source text.
#[derive(Clone, Debug)]
struct Spanned {
    tok: Tok,
    line: usize,
    column: usize,
    text: String,
}

/// The lexer over one source.
struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
    source: &'a str,
}

impl<'a> Lexer<'a> {
    fn error(&self, line: usize, column: usize, near: &str, message: impl Into<String>) -> ParseError {
        ParseError { source: self.source.into(), line, column, near: near.into(), message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn next_token(&mut self) -> Result<Spanned, ParseError> {
        // Blanks, comments, line continuations.
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r') => self.at += 1,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.at += 1;
                    }
                }
                Some(b'\\') if self.src.get(self.at + 1) == Some(&b'\n') => {
                    self.at += 2;
                    self.line += 1;
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
        let (start, line, column) = (self.at, self.line, self.at - self.line_start + 1);
        let text = |s: &Self| String::from_utf8_lossy(s.src.get(start..s.at).unwrap_or_default()).into_owned();
        let Some(c) = self.peek() else {
            return Ok(Spanned { tok: Tok::Eof, line, column, text: String::new() });
        };
        self.at += 1;
        let tok = match c {
            b'\n' => {
                self.line += 1;
                self.line_start = self.at;
                Tok::End
            }
            b';' => Tok::End,
            b'=' => Tok::Assign,
            b'[' => Tok::Open,
            b']' => Tok::Close,
            b',' => Tok::Comma,
            b'+' if self.peek() == Some(b'=') => {
                self.at += 1;
                Tok::Append
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while matches!(self.peek(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.')) {
                    self.at += 1;
                }
                Tok::Ident(text(self))
            }
            b'0'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' | b'x' | b'X')) {
                    self.at += 1;
                }
                Tok::Num(text(self))
            }
            b'"' | b'\'' => Tok::Str(self.string(c, line, column)?),
            _ => {
                let ch = String::from_utf8_lossy(&[c]).into_owned();
                return Err(self.error(line, column, &ch, format!("unexpected character '{}'", ch.escape_default())));
            }
        };
        Ok(Spanned { tok, line, column, text: text(self) })
    }

    /// The rest of a string quoted with `quote`, unescaped.
    fn string(&mut self, quote: u8, line: usize, column: usize) -> Result<String, ParseError> {
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(line, column, "", "unterminated string"));
            };
            self.at += 1;
            match c {
                b'\n' => return Err(self.error(line, column, "", "newline in string")),
                c if c == quote => break,
                b'\\' => {
                    let Some(e) = self.peek() else { continue };
                    self.at += 1;
                    let byte = match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'v' => 0x0b,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'a' => 0x07,
                        b'x' => self.radix_escape(16, 2, line, column)?,
                        b'0'..=b'7' => {
                            self.at -= 1;
                            self.radix_escape(8, 3, line, column)?
                        }
                        b'\\' | b'\'' | b'"' => e,
                        b'\n' => {
                            self.line += 1;
                            self.line_start = self.at;
                            continue;
                        }
                        other => {
                            let near = format!("\\{}", other as char);
                            return Err(self.error(line, column, &near, "invalid escape sequence in string"));
                        }
                    };
                    out.push(byte);
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error(line, column, "", "string is not UTF-8"))
    }

    /// Up to `max` digits of `radix` as one byte.
    fn radix_escape(&mut self, radix: u32, max: usize, line: usize, column: usize) -> Result<u8, ParseError> {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            let Some(d) = self.peek().and_then(|c| (c as char).to_digit(radix)) else { break };
            v = v * radix + d;
            self.at += 1;
            n += 1;
        }
        if n == 0 || v > 0xff {
            return Err(self.error(line, column, "", "invalid numeric escape in string"));
        }
        Ok(v as u8)
    }
}

/// The parser: tokens into settings.
struct Parser<'a> {
    lex: Lexer<'a>,
    look: Spanned,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Result<Spanned, ParseError> {
        let next = self.lex.next_token()?;
        Ok(std::mem::replace(&mut self.look, next))
    }

    fn unexpected(&self, expecting: &str) -> ParseError {
        let t = &self.look;
        let msg = format!("syntax error, unexpected {}, expecting {expecting}", t.tok.describe());
        self.lex.error(t.line, t.column, t.text.trim_end_matches('\n'), msg)
    }

    fn skip_newlines(&mut self) -> Result<(), ParseError> {
        while self.look.tok == Tok::End && self.look.text == "\n" {
            self.advance()?;
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.look.tok.clone() {
            Tok::Str(s) => {
                self.advance()?;
                Ok(Value::Str(s))
            }
            Tok::Num(n) => {
                self.advance()?;
                Ok(Value::Num(n))
            }
            Tok::Open => {
                self.advance()?;
                let mut items = Vec::new();
                loop {
                    self.skip_newlines()?;
                    if self.look.tok == Tok::Close {
                        break;
                    }
                    items.push(self.value()?);
                    self.skip_newlines()?;
                    match self.look.tok {
                        Tok::Comma => {
                            self.advance()?;
                        }
                        Tok::Close => break,
                        _ => return Err(self.unexpected("',' or ']'")),
                    }
                }
                self.advance()?;
                Ok(Value::List(items))
            }
            _ => Err(self.unexpected("STRING or NUMBER or '['")),
        }
    }

    fn settings(&mut self, out: &mut Vec<(Setting, bool)>) -> Result<(), ParseError> {
        loop {
            match self.look.tok.clone() {
                Tok::Eof => return Ok(()),
                Tok::End => {
                    self.advance()?;
                }
                Tok::Ident(name) => {
                    let line = self.look.line;
                    self.advance()?;
                    let append = match self.look.tok {
                        Tok::Assign => false,
                        Tok::Append => true,
                        _ => return Err(self.unexpected("'=' or '+='")),
                    };
                    self.advance()?;
                    let value = self.value()?;
                    if !matches!(self.look.tok, Tok::End | Tok::Eof) {
                        return Err(self.unexpected("NEWLINE or ';'"));
                    }
                    out.push((Setting { name, value, at: (self.lex.source.into(), line) }, append));
                }
                _ => return Err(self.unexpected("IDENT")),
            }
        }
    }
}

impl Config {
    /// Parses `text` (from `source`, for error messages) and adds its
    /// settings after those already here.
    pub fn parse_more(&mut self, source: &str, text: &str) -> Result<(), ParseError> {
        let mut lex = Lexer { src: text.as_bytes(), at: 0, line: 1, line_start: 0, source };
        let look = lex.next_token()?;
        let mut parser = Parser { lex, look };
        let mut parsed = Vec::new();
        parser.settings(&mut parsed)?;
        for (setting, append) in parsed {
            self.add(setting, append);
        }
        Ok(())
    }

    /// Parses one source.
    pub fn parse(source: &str, text: &str) -> Result<Config, ParseError> {
        let mut c = Config::default();
        c.parse_more(source, text)?;
        Ok(c)
    }

    fn add(&mut self, s: Setting, append: bool) {
        if append {
            if let Some(old) = self.settings.iter_mut().rev().find(|o| o.name == s.name) {
                match (&mut old.value, s.value) {
                    (Value::List(items), Value::List(more)) => items.extend(more),
                    (Value::List(items), v) => items.push(v),
                    (Value::Str(a), Value::Str(b)) => a.push_str(&b),
                    (old_value, v) => *old_value = v,
                }
                return;
            }
        }
        self.settings.retain(|o| o.name != s.name);
        self.settings.push(s);
    }

    /// The setting named `name`.
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.name == name)
    }

    /// Every setting, in order.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse("t.cfg", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ParseError {
        Config::parse("t.cfg", text).expect_err(text)
    }

    fn val(c: &Config, name: &str) -> Value {
        c.get(name).unwrap_or_else(|| panic!("{name}")).value.clone()
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn strings_numbers_and_lists() {
        let c = parse("name = \"d1\"\nmemory = 512\nvcpus=0x2\ndisk = [ 'a', \"b\" ]\nkernel='/k'\n");
        assert_eq!(val(&c, "name"), s("d1"));
        assert_eq!(val(&c, "memory").number(), Some(512));
        assert_eq!(val(&c, "vcpus").number(), Some(2));
        assert_eq!(val(&c, "disk"), Value::List(vec![s("a"), s("b")]));
        assert_eq!(val(&c, "kernel"), s("/k"));
    }

    #[test]
    fn numbers_read_like_strtol_base_0() {
        assert_eq!(parse_c_number("010"), Some(8));
        assert_eq!(parse_c_number("0x1F"), Some(31));
        assert_eq!(parse_c_number("0"), Some(0));
        assert_eq!(parse_c_number(" 42"), Some(42));
        assert_eq!(parse_c_number("-3"), Some(-3));
        assert_eq!(parse_c_number("12abc"), None);
        assert_eq!(parse_c_number("09"), None, "not octal");
        assert_eq!(parse_c_number(""), None);
        let c = parse("memory = \"256\"\nbad = 12ab\n");
        assert_eq!(val(&c, "memory").number(), Some(256), "a quoted number counts");
        assert_eq!(val(&c, "bad").number(), None, "lexes as NUMBER, fails strtol");
    }

    #[test]
    fn comments_semicolons_blank_lines_and_continuations() {
        let c = parse("# header\n\n  a = 1 ; b = 2 # trailing\n;;\nc = \\\n 3\nd = [ 1,\n  2, # two\n  3,\n]\n");
        assert_eq!(val(&c, "a").number(), Some(1));
        assert_eq!(val(&c, "b").number(), Some(2));
        assert_eq!(val(&c, "c").number(), Some(3));
        assert_eq!(
            val(&c, "d"),
            Value::List(vec![Value::Num("1".into()), Value::Num("2".into()), Value::Num("3".into())])
        );
        assert_eq!(c.get("c").unwrap().at, ("t.cfg".into(), 5));
        assert_eq!(parse("x = 1").get("x").map(|s| s.value.number()), Some(Some(1)), "no final newline");
        assert_eq!(parse("").settings().len(), 0);
    }

    #[test]
    fn lists_nest_and_may_be_empty_or_end_with_a_comma() {
        let c = parse("v = [ [ 'a', 1 ], [], ]\ne = []\n");
        assert_eq!(
            val(&c, "v"),
            Value::List(vec![Value::List(vec![s("a"), Value::Num("1".into())]), Value::List(vec![])])
        );
        assert_eq!(val(&c, "e"), Value::List(vec![]));
        assert!(val(&c, "v").string().is_none());
    }

    #[test]
    fn escapes_in_strings() {
        let c = parse(
            r#"a = "x\ty\n\"q\" \\ \x41\101 'in'"
b = 'it''s'
"#
            .replace("'it''s'", r"'it\'s'")
            .as_str(),
        );
        assert_eq!(val(&c, "a"), s("x\ty\n\"q\" \\ AA 'in'"));
        assert_eq!(val(&c, "b"), s("it's"));
        let e = err("a = \"bad \\q\"\n");
        assert!(e.message.contains("escape"), "{e}");
    }

    #[test]
    fn the_last_setting_wins_and_plus_equals_appends() {
        let mut c =
            parse("name = 'a'\nmemory = 128\ndisk = ['x']\ndisk += ['y']\nextra = 'console=hvc0'\nextra += ' quiet'\n");
        c.parse_more("command line", "memory=256\nname=\"b\"\ndisk+='z'\n").unwrap();
        assert_eq!(val(&c, "memory").number(), Some(256));
        assert_eq!(val(&c, "name"), s("b"));
        assert_eq!(val(&c, "disk"), Value::List(vec![s("x"), s("y"), s("z")]));
        assert_eq!(val(&c, "extra"), s("console=hvc0 quiet"));
        assert_eq!(c.get("memory").unwrap().at.0, "command line");
        assert_eq!(c.settings().iter().filter(|s| s.name == "memory").count(), 1);
        let fresh = parse("l += [1]\n");
        assert_eq!(val(&fresh, "l"), Value::List(vec![Value::Num("1".into())]), "+= on nothing sets");
    }

    #[test]
    fn identifiers_take_letters_digits_dots_and_underscores() {
        let c = parse("on_crash = 'preserve'\ncpuid.x = 1\nA_b9 = 2\n");
        assert!(c.get("on_crash").is_some() && c.get("cpuid.x").is_some() && c.get("A_b9").is_some());
    }

    #[test]
    fn syntax_errors_name_line_column_and_token() {
        let e = err("name = 'd'\nmemory 512\n");
        assert_eq!((e.line, e.column, e.near.as_str()), (2, 8, "512"));
        assert_eq!(
            e.to_string(),
            "t.cfg:2:8: config parsing error near `512': syntax error, unexpected NUMBER, expecting '=' or '+='"
        );
        let e = err("a = 1 2\n");
        assert_eq!((e.line, e.column), (1, 7));
        assert!(e.message.contains("expecting NEWLINE or ';'"));
        let e = err("a = \n");
        assert!(e.message.contains("expecting STRING or NUMBER or '['"), "{e}");
        let e = err("a = [1 2]\n");
        assert_eq!((e.column, e.near.as_str()), (8, "2"));
        let e = err("a = 'open\n");
        assert!(e.message.contains("newline in string"));
        let e = err("a = 'open");
        assert!(e.message.contains("unterminated"));
        let e = err("a = 1\n  - = 2\n");
        assert_eq!((e.line, e.column, e.near.as_str()), (2, 3, "-"));
        let e = err("= 1\n");
        assert!(e.message.contains("expecting IDENT"));
        let e = err("a = [1,\n2\n");
        assert!(e.message.contains("end of file"), "{e}");
        assert!(err("a = (1)\n").message.contains("unexpected character"));
        assert!(err("9a = 1\n").message.contains("expecting IDENT"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 7u32;
        let alphabet = b"ab =+[],;#'\"\\\n01x.-\t\xff";
        for len in 0..200 {
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    alphabet[(state >> 16) as usize % alphabet.len()]
                })
                .collect();
            let _ = Config::parse("fuzz", &String::from_utf8_lossy(&text));
        }
    }
}
