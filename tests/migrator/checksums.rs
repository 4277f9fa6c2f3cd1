//! Applied migrations are never edited: a database that applied the old text keeps it (refinery
//! applies each version once, then refuses to run at all once an applied version's content has
//! diverged), while a new database gets the new text. `migrations/CHECKSUMS`
//! holds the SHA-256 of every committed migration (the output of `sha256sum`); this test fails
//! when a migration's content no longer matches its line, when a listed migration is gone, or
//! when a migration on disk is not listed. It reads files only: no database.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::MIGRATIONS;

const LIST: &str = "CHECKSUMS";
/// The one way to write the list, run from the repository's root. Everything the test says
/// refers to it.
const UPDATE: &str = "cd migrations && sha256sum V*.sql > CHECKSUMS";

/// The migrations on disk, as the update command selects them (`V*.sql`), with their SHA-256.
fn migrations_on_disk() -> BTreeMap<String, String> {
    std::fs::read_dir(MIGRATIONS)
        .expect("migrations/")
        .map(|entry| entry.expect("an entry of migrations/").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            (name.starts_with('V') && name.ends_with(".sql") && path.is_file()).then(|| {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, hex::encode(Sha256::digest(bytes)))
            })
        })
        .collect()
}

/// `migrations/CHECKSUMS`: lines of `<sha256>  <file name>`, as `sha256sum` writes them.
fn listed_checksums() -> BTreeMap<String, String> {
    let path = Path::new(MIGRATIONS).join(LIST);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("migrations/{LIST} ({e}); create it with `{UPDATE}`"));
    let mut listed = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let malformed = || -> ! {
            panic!(
                "migrations/{LIST} line {}: `{line}` is not `<sha256>  <file>`; write the list \
                 with `{UPDATE}`",
                number + 1
            )
        };
        let Some((sum, name)) = line.split_once(char::is_whitespace) else {
            malformed()
        };
        // `sha256sum` marks a file read in binary mode with `*`.
        let name = name.trim_start().trim_start_matches('*');
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
            malformed();
        }
        if listed
            .insert(name.to_owned(), sum.to_ascii_lowercase())
            .is_some()
        {
            panic!("migrations/{LIST} lists {name} twice; write the list with `{UPDATE}`");
        }
    }
    listed
}

#[test]
fn committed_migrations_are_never_edited_and_every_migration_is_listed() {
    let on_disk = migrations_on_disk();
    let listed = listed_checksums();
    assert!(!on_disk.is_empty(), "no V*.sql in migrations/");

    let mut problems = Vec::new();
    for (name, listed_sum) in &listed {
        match on_disk.get(name) {
            Some(sum) if sum == listed_sum => {}
            Some(sum) => problems.push(format!(
                "{name} was edited after it was committed (listed {listed_sum}, now {sum})"
            )),
            None => problems.push(format!(
                "{name} is listed but no longer in migrations/ (renamed or deleted)"
            )),
        }
    }
    for name in on_disk.keys().filter(|name| !listed.contains_key(*name)) {
        problems.push(format!("{name} is not listed in migrations/{LIST}"));
    }

    assert!(
        problems.is_empty(),
        "migrations/ does not match migrations/{LIST}:\n  - {}\n\
         Never edit a committed migration: databases that already applied it keep the old text \
         and refinery refuses to migrate them (divergent version). Undo the change and add a \
         new migration (the next V<n>__<name>.sql) instead.\n\
         A new migration is added to the list with `{UPDATE}` (from the repository's root); \
         the diff of migrations/{LIST} must then only add lines.",
        problems.join("\n  - ")
    );
}
