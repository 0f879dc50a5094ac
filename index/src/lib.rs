//! Vector store for xsearch.
