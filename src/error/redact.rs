//! Error messages without the input they quote: what serde said about a payload, with the
//! event's own values taken out, so that a message may reach the log.

/// serde's message for input that does not fit, without the input: the segments it quotes
/// (`"..."`, `` `...` ``) before ", expected" are what the event said (a value, an unknown key,
/// a variant), those after it are ours (the types and names we expect). The message reaches
/// the log and the runtime's error answer, which Lambda logs at every level.
pub fn without_data(message: &str) -> String {
    let (said, expected) = message
        .find(", expected")
        .map_or((message, ""), |i| message.split_at(i));
    // A misspelt member name is a typo, not data: kept when it is within two edits of a name
    // the message expects, so the caller sees which key to fix.
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let typo = |text: &str| text.len() <= 64 && names.iter().any(|n| edits(text, n) <= 2);
    let mut out = String::with_capacity(message.len());
    let mut quoted: Option<(char, String)> = None;
    let mut escaped = false;
    for c in said.chars() {
        match &mut quoted {
            Some((q, text)) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && *q == '"' {
                    escaped = true;
                } else if c == *q {
                    out.push_str(if *q == '`' && typo(text) { text } else { "…" });
                    out.push(c);
                    quoted = None;
                    continue;
                }
                text.push(c);
            }
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quoted = Some((c, String::new()));
                }
            }
        }
    }
    if quoted.is_some() {
        out.push('…');
    }
    out.push_str(expected);
    out
}

/// Levenshtein distance, for short names.
pub(super) fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
