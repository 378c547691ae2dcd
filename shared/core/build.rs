//! Embeds the template catalog (`templates/` at the workspace root) into the binary, so a
//! Lambda reads no files at run time and a catalog change rebuilds the crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            // a directory's mtime changes when entries are added or removed
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../templates").canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    // the lib checks this against its own location (see template.rs)
    let mut code = format!(
        "pub const LISTED_FROM: &str = {:?};\n",
        manifest.join("../../templates").display().to_string()
    );
    code.push_str("pub static FILES: &[(&str, &str)] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(&root)?
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
    }
    code.push_str("];\n");
    // Cargo shares this script's output between checkouts at different paths that use one
    // target directory: rerun when built from elsewhere (the checkout is the working directory
    // of make, CI and the README's commands), and write only what changed so a rerun in the
    // same checkout recompiles nothing.
    println!("cargo:rerun-if-env-changed=PWD");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("catalog_files.rs");
    if fs::read_to_string(&out).ok().as_deref() != Some(code.as_str()) {
        fs::write(out, code)?;
    }
    Ok(())
}
