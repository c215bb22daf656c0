//! A large document read in pieces, one per core, each a run of whole top-level entries.
//!
//! Reading is nearly all of a load's time, and a relay starting or refreshing has its cores to
//! itself. A cut is only ever a guess: it is right when every piece reads on its own, and any
//! piece that does not read sends the caller back to the whole document. So a wrong guess
//! costs time, never a different answer (see each format's cut for why).
//! 100,000 flags on 2 cores: see BENCHMARKS.md.

use super::model::FlagDef;

pub(super) type Flags = Vec<(String, FlagDef)>;

/// A piece is at least this large; smaller documents are read whole.
pub(super) const PIECE_MIN: usize = 1 << 20;

pub(super) fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Each piece read by `read`, the pieces after the first on threads of their own and the
/// first on this one; their flags in order, or `None` if any piece did not read.
pub(super) fn read_each<P: Sync>(
    pieces: &[P],
    read: impl Fn(&P) -> Option<Flags> + Sync,
) -> Option<Flags> {
    let Some((first, rest)) = pieces.split_first() else {
        return Some(Flags::new());
    };
    let read = &read;
    let (first, rest) = std::thread::scope(|s| {
        let rest: Vec<_> = rest.iter().map(|p| s.spawn(move || read(p))).collect();
        let first = read(first);
        let rest: Vec<_> = rest.into_iter().map(|h| h.join().ok().flatten()).collect();
        (first, rest)
    });
    let (first, rest) = (first?, rest.into_iter().collect::<Option<Vec<_>>>()?);
    if rest.is_empty() {
        return Some(first);
    }
    // Sized once: growing the first piece's list would move every flag read so far again.
    let mut flags = Flags::with_capacity(first.len() + rest.iter().map(Vec::len).sum::<usize>());
    flags.extend(first);
    for more in rest {
        flags.extend(more);
    }
    Some(flags)
}

/// `text` cut into at most `n` pieces of `min` bytes or more: the cuts are spread evenly, each
/// moved on to the start of the next line after it for which `starts` holds (plus `skip`
/// bytes); fewer pieces when there is no such line.
fn cut(text: &str, n: usize, min: usize, skip: usize, starts: impl Fn(&[u8]) -> bool) -> Vec<&str> {
    let bytes = text.as_bytes();
    let next_line = |mut at: usize| loop {
        at += bytes[at..].iter().position(|&b| b == b'\n')? + 1;
        if starts(&bytes[at..]) {
            return Some(at + skip);
        }
    };
    let n = n.min(text.len() / min.max(1)).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let Some(cut) = next_line((text.len() * i / n).max(start)) else {
            break;
        };
        out.push(&text[start..cut]);
        start = cut;
    }
    out.push(&text[start..]);
    out
}

/// `text` cut into at most `n` pieces of about `min` bytes or more, each cut at the start of a
/// line that can only be a top-level key (`name:` at column 0), so that every piece is a run of
/// whole top-level entries and the pieces' flags, in order, are the document's.
///
/// Why a cut cannot change the reading: in block style everything inside a top-level entry is
/// indented, so a key at column 0 starts the next entry. The only text that can put such a line
/// inside an entry is a construct still open at the cut (a quoted scalar, a flow collection);
/// the piece before the cut then ends inside it and fails to parse, and a failed piece sends the
/// whole document to the two-stage path. The same holds for what does not cross pieces: an
/// alias to an anchor in an earlier piece, a `%TAG` handle, a second document.
pub(super) fn yaml(text: &str, n: usize, min: usize) -> Vec<&str> {
    cut(text, n, min, 0, top_key)
}

/// Whether `line` starts with a plain top-level key: `[A-Za-z0-9_][A-Za-z0-9_.-]*:` followed by
/// a space, a line end or the end.
fn top_key(line: &[u8]) -> bool {
    let name = line
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    let first_ok = line
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    first_ok
        && line.get(name) == Some(&b':')
        && matches!(line.get(name + 1), None | Some(b' ' | b'\n' | b'\r'))
}

/// A JSON object document cut into runs of its members, each to be read as `{` + run + `}`;
/// `None` when it is not worth cutting or has no place to cut.
///
/// A cut is at the start of a line indented as the first member's key is, just before a `"`.
/// Why a cut cannot change the reading: JSON strings hold no raw line break, so a line start is
/// outside every string. The first run starts at the first member; if `{` + run + `}` reads as
/// an object, the run is whole members and its end is between two members of the document, so
/// the next run starts at a member too, and so on. A cut anywhere else (inside a flag's object
/// or list) leaves a run whose brackets do not close, which does not read.
pub(super) fn json(text: &str, n: usize, min: usize) -> Option<Vec<&str>> {
    const WS: &[char] = &[' ', '\t', '\n', '\r'];
    let inner = text.trim_matches(WS).strip_prefix('{')?.strip_suffix('}')?;
    let first_key = inner.find(|c| !WS.contains(&c))?;
    let indent = &inner[..first_key];
    let indent = &indent.as_bytes()[indent.rfind('\n')? + 1..];
    let member = |line: &[u8]| line.starts_with(indent) && line.get(indent.len()) == Some(&b'"');
    let mut runs = cut(inner, n, min, indent.len(), member);
    let (_, before_last) = runs.split_last_mut().filter(|(_, b)| !b.is_empty())?;
    for run in before_last {
        *run = run.trim_end_matches(WS).strip_suffix(',')?;
    }
    Some(runs)
}

#[cfg(test)]
mod tests {
    const DOC: &str =
        "{\n  \"a\": {\"x\": [1,\n  \"y\"]},\n  \"b\": {\n    \"c\": 1\n  },\n  \"d\": {}\n}\n";

    #[test]
    fn a_json_document_is_cut_at_lines_indented_as_its_first_key() {
        // As many cuts as there are candidate lines: the one inside `a`'s list (indented like
        // a member, so a candidate), `b` and `d`, but not `c` (deeper) or `}` (no quote).
        let runs = super::json(DOC, 8, 1).unwrap();
        assert_eq!(
            runs,
            [
                "\n  \"a\": {\"x\": [1",
                "\"y\"]}",
                "\"b\": {\n    \"c\": 1\n  }",
                "\"d\": {}\n"
            ]
        );
        // The run cut inside the list does not read, which sends the caller to the whole.
        let reads = |run: &str| serde_json::from_str::<serde_json::Value>(&format!("{{{run}}}"));
        assert!(reads(runs[0]).is_err() && reads(runs[1]).is_err());
        assert!(reads(runs[2]).is_ok() && reads(runs[3]).is_ok());
        for (doc, why) in [
            ("{\"a\": {}, \"b\": {}}", "one line: nowhere to cut"),
            ("[\n  \"a\"\n]", "not an object"),
            ("{\n  \"a\": {}\n  \"b\": {}\n}", "no comma between members"),
        ] {
            assert_eq!(super::json(doc, 2, 1), None, "{why}");
        }
        assert_eq!(
            super::json(DOC, 2, DOC.len()),
            None,
            "small documents are read whole"
        );
    }
}
