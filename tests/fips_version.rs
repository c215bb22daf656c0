//! `.fips-version` pins the AWS-LC FIPS module (`aws-lc-fips-sys`) the FIPS build links: a
//! validated module is a specific version, so a lockfile update that moves it must be a
//! deliberate change to this file too.

#[test]
fn lockfile_matches_the_pinned_fips_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pinned = std::fs::read_to_string(root.join(".fips-version")).expect(".fips-version exists");
    let pinned = pinned.trim();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let mut versions = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"aws-lc-fips-sys\"" {
            let v = lines.next().unwrap_or_default().trim();
            versions.push(
                v.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_owned(),
            );
        }
    }
    assert_eq!(
        versions,
        vec![pinned.to_owned()],
        "Cargo.lock's aws-lc-fips-sys must be exactly the version in .fips-version"
    );
}
