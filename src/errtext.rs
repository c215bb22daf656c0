//! Error texts that quote a source (a parse error's snippet, a server's message) are bounded,
//! so a 2 MB one-line document does not become a 2 MB log line, admin answer or `/info`.

/// The longest message about one flag or one source fault, in bytes.
pub(crate) const MAX_MESSAGE: usize = 512;

/// `text` if at most `max` bytes long, else its beginning (where the location is) and its end,
/// with how much was cut in between.
pub(crate) fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let head = floor_boundary(text, max * 3 / 4);
    let tail = ceil_boundary(text, text.len() - max / 4);
    format!(
        "{}… [{} bytes cut] …{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
    .into()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_texts_and_cuts_long_ones_in_the_middle() {
        assert_eq!(bounded("short", 10), "short");
        let long = format!("flags.yaml:1:1: {}é{}", "x".repeat(1000), "end");
        let b = bounded(&long, 100);
        assert!(b.len() < 140, "{b}");
        assert!(b.starts_with("flags.yaml:1:1: "), "{b}");
        assert!(b.ends_with("end"), "{b}");
        assert!(b.contains("bytes cut"), "{b}");
        let multibyte = "é".repeat(600);
        assert!(bounded(&multibyte, 101).len() < 160);
    }
}
