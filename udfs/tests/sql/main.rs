//! The function library's tests through DataFusion sessions, in one test binary: the library
//! is built at opt-level 3, and so is each of its test binaries, each linking DataFusion — one
//! binary instead of three took four minutes of CPU off a cold build.

mod doc_examples;
mod slt;
mod totality;
