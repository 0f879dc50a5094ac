//! The command line's side of the library's errors: where a library error suggests a fix in
//! library terms, the command says it in its own (flags, environment, commands).

use xsearch::{Error, IndexError, ModelError, ParseError};

/// The suggestion the command gives for `err` instead of the library's, if any.
pub fn hint(err: &Error) -> Option<&'static str> {
    Some(match err {
        Error::NoIndex { .. } => {
            "Run `xsearch index <FOLDER>` first, or point --index (or XSEARCH_INDEX) at an \
             existing index."
        }
        Error::Model(ModelError::ModelNotFound { .. }) => {
            "Pass --model a directory holding open_clip_config.json and \
             open_clip_model.safetensors, or a hub id such as timm/resnet50_clip.openai."
        }
        Error::Model(ModelError::UnsupportedModel { .. }) => {
            "xsearch runs CLIP with a ModifiedResNet image tower (RN50 family); point --model \
             at such a checkpoint."
        }
        Error::Model(ModelError::ModelUnavailable { .. }) => {
            "Download both files into a directory and pass it with --model <DIR> (or set \
             XSEARCH_MODEL), or allow network access to the hub."
        }
        Error::RecordedModel { .. } => {
            "Pass --model <DIR> (or set XSEARCH_MODEL) with the model's new location, or \
             another copy of the same model."
        }
        Error::Index(IndexError::NoView { .. }) => {
            "Run `xsearch index` on it once (it must be writable), then search again."
        }
        Error::Query(ParseError::Empty) => {
            "Describe what to find, e.g. `xsearch query \"sunset over sea\"`."
        }
        _ => return None,
    })
}

/// How the command prints `err` (after `xsearch: `): the library's message with the
/// command's suggestion in place of the library's, or the chain of causes, each said once
/// ([`crate::output::error_message`]).
pub fn render(err: &anyhow::Error) -> String {
    let library = err.chain().next().and_then(|e| e.downcast_ref::<Error>());
    match library.and_then(|e| Some((e, hint(e)?))) {
        Some((err, hint)) => {
            let message = err.to_string();
            // Library messages are `what happened`, a blank line, then the suggestion.
            let what = message.split("\n\n").next().unwrap_or_default();
            format!("{what}\n\n{hint}")
        }
        None => crate::output::error_message(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_suggestion_is_replaced_by_the_command_s() {
        let err = anyhow::Error::from(Error::NoIndex {
            path: "/nowhere".into(),
        });
        assert_eq!(
            render(&err),
            "/nowhere: no index here\n\nRun `xsearch index <FOLDER>` first, or point --index \
             (or XSEARCH_INDEX) at an existing index."
        );
        let err = anyhow::Error::from(Error::Query(ParseError::Empty));
        assert_eq!(
            render(&err),
            "empty query\n\nDescribe what to find, e.g. `xsearch query \"sunset over sea\"`."
        );
    }

    #[test]
    fn errors_without_a_hint_print_their_chain() {
        let err = anyhow::Error::from(Error::EmptyQuery);
        assert_eq!(
            render(&err),
            "the query's terms cancel each other out\n\nChange their weights or drop one."
        );
    }
}
