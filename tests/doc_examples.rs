//! Every ```c block of README.md and docs/*.md compiles as a user would
//! build it: a module of its own, built with PGXS against the PostgreSQL
//! of $PG_CONFIG (default `pg_config`) and the installed netbuf.h
//! (`#include "extension/netbuf/netbuf.h"`, from includedir-server), with
//! -Wall -Wmissing-prototypes -Werror.  A failure names the Markdown file
//! and line: each block is compiled behind a `#line` directive, so the
//! compiler's own messages point into the Markdown.
//!
//! The Rust blocks are doc tests (src/lib.rs, `mod docs`); SQL and shell
//! blocks are not checked.
//!
//! Needs `make install` first (netbuf.h in includedir-server); `make test`
//! does it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netbuf_testkit::pg_config;
use netbuf_testkit::process::run;

const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Warnings are errors: an example must build cleanly as it stands.
const CFLAGS: &str = "-Wall -Wmissing-prototypes -Werror";

/// One fenced code block: the line of its opening fence (1-based) and its
/// body.
#[derive(Debug, PartialEq)]
struct Block {
    line: usize,
    body: String,
}

/// The fenced blocks of `markdown` whose info string's first word is
/// `lang` (```c, but not ```cpp or ```text).
fn code_blocks(markdown: &str, lang: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // (the fence's line, the block's language, its body so far)
    let mut open: Option<(usize, String, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (open.take(), fence) {
            (None, Some(info)) => {
                let word = info.split([',', ' ']).next().unwrap_or_default();
                open = Some((index + 1, word.to_owned(), String::new()));
            }
            (None, None) => {}
            (Some((line, word, body)), Some(_)) => {
                if word == lang {
                    blocks.push(Block { line, body });
                }
            }
            (Some((start, word, mut body)), None) => {
                body.push_str(line);
                body.push('\n');
                open = Some((start, word, body));
            }
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    blocks
}

fn pg_config_program() -> PathBuf {
    std::env::var_os("PG_CONFIG")
        .unwrap_or_else(|| "pg_config".into())
        .into()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, as (path relative to the repository, text).
fn documents() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = fs::read_dir(repo().join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("docs/ entry").file_name())
        .map(|name| format!("docs/{}", name.to_string_lossy()))
        .filter(|name| name.ends_with(".md"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|name| {
            let text = fs::read_to_string(repo().join(&name))
                .unwrap_or_else(|e| panic!("read {name}: {e}"));
            (name, text)
        })
        .collect()
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("netbuf-doc-example-{}-{what}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a temp directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds `block` of `origin` as a PGXS module; Err(the build's output)
/// when it does not build.  `#line` makes the compiler name `origin` and
/// the block's lines in the Markdown.
fn compile_c(origin: &str, block: &Block, tag: &str) -> Result<(), String> {
    let dir = TempDir::new(tag);
    let source = format!("#line {} \"{origin}\"\n{}", block.line + 1, block.body);
    fs::write(dir.0.join("example.c"), source).expect("write example.c");
    let makefile = format!(
        "MODULES = example\n\
         PG_CONFIG = {}\n\
         PG_CFLAGS = {CFLAGS}\n\
         PGXS := $(shell $(PG_CONFIG) --pgxs)\n\
         include $(PGXS)\n",
        pg_config_program().display()
    );
    fs::write(dir.0.join("Makefile"), makefile).expect("write the Makefile");
    let mut make = Command::new("make");
    make.arg("-C").arg(&dir.0);
    let out = run(make, BUILD_TIMEOUT);
    if out.success() {
        Ok(())
    } else {
        Err(out.describe())
    }
}

/// The installed netbuf.h, where the examples' include finds it, must be
/// this checkout's: otherwise the test would check a stale header.
fn assert_header_installed() {
    let installed =
        PathBuf::from(pg_config("--includedir-server")).join("extension/netbuf/netbuf.h");
    let installed_text = fs::read_to_string(&installed).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `make install` first (make test does)",
            installed.display()
        )
    });
    let ours = fs::read_to_string(repo().join("include/netbuf.h")).expect("read include/netbuf.h");
    assert!(
        installed_text == ours,
        "{} is not this checkout's include/netbuf.h: run `make install` first",
        installed.display()
    );
}

#[test]
fn every_c_block_of_the_docs_builds_with_pgxs_against_the_installed_header() {
    assert_header_installed();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for (name, text) in documents() {
        for (i, block) in code_blocks(&text, "c").into_iter().enumerate() {
            let tag = format!("{}-{i}", name.replace(['/', '.'], "-"));
            if let Err(output) = compile_c(&name, &block, &tag) {
                failures.push(format!(
                    "{name}:{}: this ```c block does not build with PGXS ({CFLAGS}):\n{output}",
                    block.line
                ));
            }
            checked.push(format!("{name}:{}", block.line));
        }
    }
    // The README's module and the handler module of docs/c-api.md at least.
    assert!(
        checked.iter().any(|b| b.starts_with("README.md:"))
            && checked.iter().any(|b| b.starts_with("docs/c-api.md:")),
        "no C block found in README.md or docs/c-api.md: {checked:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("built: {}", checked.join(", "));
}

// ---- the checker itself --------------------------------------------------------

const SAMPLE: &str = "\
# Sample

```text
not C
```

```c
#include \"postgres.h\"

#include \"fmgr.h\"

PG_MODULE_MAGIC;

int			helper(void);

int
helper(void)
{
	return 1;
}
```

```cpp
int x;
```

```c
#include \"postgres.h\"

#include \"fmgr.h\"

PG_MODULE_MAGIC;

int
unprototyped(void)
{
	return 1;
}
```
";

#[test]
fn code_blocks_finds_the_c_blocks_with_their_lines() {
    let blocks = code_blocks(SAMPLE, "c");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(blocks[0].line, 7);
    assert!(blocks[0].body.starts_with("#include \"postgres.h\"\n"));
    assert!(blocks[0].body.ends_with("}\n"));
    assert_eq!(blocks[1].line, 27);
    assert!(blocks[1].body.contains("unprototyped"));
    assert_eq!(code_blocks(SAMPLE, "cpp").len(), 1);
    assert_eq!(code_blocks(SAMPLE, "text")[0].body, "not C\n");
}

/// The checker passes a clean block and fails a block with a warning,
/// naming the Markdown file and the line of the offending function.
#[test]
fn compile_c_fails_a_block_with_a_warning_naming_file_and_line() {
    let blocks = code_blocks(SAMPLE, "c");
    if let Err(output) = compile_c("sample.md", &blocks[0], "sample-good") {
        panic!("the clean sample block should build:\n{output}");
    }
    let output = compile_c("sample.md", &blocks[1], "sample-bad")
        .expect_err("a function without a prototype should fail the build");
    // `unprototyped(void)` is the block's line 8, the file's line 27 + 8.
    assert!(
        output.contains("sample.md:35:") && output.contains("no previous prototype"),
        "{output}"
    );
}

/// Every Markdown file whose C blocks are compiled here also has its Rust
/// blocks compiled: src/lib.rs's `#[cfg(doctest)] mod docs` must include it,
/// or a new docs/ page's Rust examples would never be built.
#[test]
fn every_markdown_file_is_a_doc_test() {
    let lib = fs::read_to_string(repo().join("src/lib.rs")).expect("read src/lib.rs");
    let missing: Vec<String> = documents()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !lib.contains(&format!("include_str!(\"../{name}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "src/lib.rs's doctest module does not include {missing:?}: add a \
         `#[doc = include_str!(\"../<file>\")]` struct for each"
    );
}
