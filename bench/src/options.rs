//! What to measure, as the command line asked: the folder, the passes, the tools and
//! allocators, and the subset of classes, sets and concurrencies. `main` builds it; the
//! suite and the other tools' detection read it.

use std::path::PathBuf;

use crate::cases::{Class, Set};
use crate::measure::Allocator;

/// The run `main` asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub iterations: usize,
    pub json: Option<PathBuf>,
    /// Where `npm install sharp` was run; default `${RENDITION_CACHE:-~/.cache/rendition}/sharp`.
    pub sharp_dir: Option<PathBuf>,
    pub no_sharp: bool,
    pub no_vipsthumbnail: bool,
    /// Rendition's allocators, the first one the class table's (never empty).
    pub allocators: Vec<Allocator>,
    /// Also run every Rendition case with the sandbox off, right before it runs with it on.
    pub sandbox_compare: bool,
    /// Run only these sets (empty: the default ones).
    pub only: Vec<Set>,
    /// Only these classes (empty: all four).
    pub classes: Vec<Class>,
    /// At most this many files per class (the first by name).
    pub per_class: Option<usize>,
    /// Only these concurrencies (empty: 1 and 2).
    pub concurrency: Vec<usize>,
}

impl Options {
    /// The sets measured on `class`.
    pub fn sets(&self, class: Class) -> Vec<Set> {
        if !self.only.is_empty() {
            return self.only.clone();
        }
        let mut sets = vec![Set::One, Set::Eager10];
        if class == Class::Progressive {
            sets.push(Set::Eager15);
        }
        sets
    }
}
