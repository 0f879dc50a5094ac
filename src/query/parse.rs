//! The query syntax of `xsearch query`.
//!
//! ```text
//! query  := term (op term)*
//! op     := " + " | " - "          (an operator stands alone between spaces)
//! term   := [weight ":"] body
//! weight := a decimal number, e.g. 2 or 0.5
//! body   := an image file path (it exists, and contains a path separator or ends in an image
//!           extension) | any other text
//! ```
//!
//! So `sunset over sea`, `"2:beach" + ./photo.jpg - people` and `photo.jpg - 0.5:blue` are
//! queries. A `+` or `-` that is not surrounded by spaces is part of the text (`t-shirt`).
//! A leading ` - ` is allowed (`- people` alone steers away from people, which is rarely useful).

use std::path::{Path, PathBuf};

use super::{Query, Term};

/// Why a query could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The query has no terms.
    #[error("empty query\n\nDescribe what to find, e.g. `sunset over sea`.")]
    Empty,
    /// An operator with no term after it.
    #[error(
        "`{0}` is not followed by a term\n\nWrite terms around the operator: `beach + sunset`."
    )]
    DanglingOperator(char),
}

/// Parses `input`; `is_file` says whether a path names an existing file (injected for tests).
pub(super) fn parse(input: &str, is_file: &dyn Fn(&Path) -> bool) -> Result<Query, ParseError> {
    let mut query = Query::default();
    let mut sign = 1.0f32;
    let mut words: Vec<&str> = Vec::new();
    let mut pending_operator = None;
    for word in input.split_whitespace() {
        match word {
            "+" | "-" => {
                if !words.is_empty() {
                    query.terms.push(term(sign, &words.join(" "), is_file));
                    words.clear();
                } else if pending_operator.is_some() || !query.terms.is_empty() {
                    return Err(ParseError::DanglingOperator(
                        pending_operator.unwrap_or('+'),
                    ));
                }
                sign = if word == "-" { -1.0 } else { 1.0 };
                pending_operator = word.chars().next();
            }
            _ => {
                words.push(word);
                pending_operator = None;
            }
        }
    }
    if !words.is_empty() {
        query.terms.push(term(sign, &words.join(" "), is_file));
    } else if let Some(op) = pending_operator {
        return Err(ParseError::DanglingOperator(op));
    }
    if query.terms.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(query)
}

fn term(sign: f32, text: &str, is_file: &dyn Fn(&Path) -> bool) -> super::WeightedTerm {
    let text = text.trim_matches('"');
    let (weight, body) = match text.split_once(':') {
        Some((w, rest)) if !rest.is_empty() => match w.parse::<f32>() {
            Ok(w) if w.is_finite() => (w, rest),
            _ => (1.0, text),
        },
        _ => (1.0, text),
    };
    let path = Path::new(body);
    let looks_like_image = body.contains(std::path::MAIN_SEPARATOR)
        || crate::decode::format::has_image_extension(path);
    let term = if looks_like_image && is_file(path) {
        Term::ImagePath(PathBuf::from(body))
    } else {
        Term::Text(body.to_owned())
    };
    super::WeightedTerm {
        weight: sign * weight,
        term,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(query: &Query) -> Vec<String> {
        query
            .terms
            .iter()
            .map(|t| match &t.term {
                Term::Text(s) => format!("{}*text({s})", t.weight),
                Term::ImagePath(p) => format!("{}*image({})", t.weight, p.display()),
                Term::Image(_) | Term::Indexed(_) => unreachable!(),
            })
            .collect()
    }

    fn files(path: &Path) -> bool {
        ["./photo.jpg", "shots/beach", "b.PNG"].contains(&path.to_str().unwrap())
    }

    #[test]
    fn plain_text_is_one_term() {
        let q = parse("  sunset   over sea ", &files).unwrap();
        assert_eq!(show(&q), ["1*text(sunset over sea)"]);
    }

    #[test]
    fn weights_signs_and_images() {
        let q = parse("\"2:beach\" + ./photo.jpg - people", &files).unwrap();
        assert_eq!(
            show(&q),
            ["2*text(beach)", "1*image(./photo.jpg)", "-1*text(people)"]
        );
        let q = parse("0.5:shots/beach - 3:b.PNG + t-shirt", &files).unwrap();
        assert_eq!(
            show(&q),
            [
                "0.5*image(shots/beach)",
                "-3*image(b.PNG)",
                "1*text(t-shirt)"
            ]
        );
    }

    #[test]
    fn without_files_every_term_is_text() {
        let q = parse("./photo.jpg - 2:/etc/passwd", &|_| false).unwrap();
        assert_eq!(show(&q), ["1*text(./photo.jpg)", "-2*text(/etc/passwd)"]);
    }

    #[test]
    fn only_existing_paths_are_images() {
        let q = parse("missing.jpg + time: 10:30", &files).unwrap();
        assert_eq!(show(&q), ["1*text(missing.jpg)", "1*text(time: 10:30)"]);
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_errs_without_panicking(input in "\\PC{0,64}") {
            let _ = parse(&input, &files);
        }

        #[test]
        fn weights_round_trip(
            weights in proptest::collection::vec(
                proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL | proptest::num::f32::ZERO,
                1..4,
            ),
            body in "[a-z]{1,8}( [a-z]{1,8})?",
        ) {
            let input: Vec<String> = weights.iter().map(|w| format!("{}:{body}", w.abs())).collect();
            let query = parse(&input.join(" - "), &files).unwrap();
            proptest::prop_assert_eq!(query.terms.len(), weights.len());
            for (i, (term, w)) in query.terms.iter().zip(&weights).enumerate() {
                let sign = if i == 0 { 1.0 } else { -1.0 };
                proptest::prop_assert_eq!(term.weight, sign * w.abs());
                proptest::prop_assert!(matches!(&term.term, Term::Text(t) if *t == body));
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(parse("   ", &files).unwrap_err(), ParseError::Empty);
        assert_eq!(
            parse("beach +", &files).unwrap_err(),
            ParseError::DanglingOperator('+')
        );
        assert_eq!(
            parse("beach - + sea", &files).unwrap_err(),
            ParseError::DanglingOperator('-')
        );
        let q = parse("- people", &files).unwrap();
        assert_eq!(show(&q), ["-1*text(people)"]);
    }
}
