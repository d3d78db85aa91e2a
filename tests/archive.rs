//! The archive as Hystax ships it: a `.tar.gz` with one top folder is unpacked once into the
//! cluster's directory, again when the file changes; a folder is used as it is; a wrong archive
//! is refused with what is missing.

mod common;

use std::process::Command;

use acura_ha::bootstrap::ansible::prepare_archive;
use common::example;

#[tokio::test]
async fn tarball_with_a_top_folder_is_unpacked_once() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let top = staging.join("hystax_ha_archive");
    let status = Command::new("cp")
        .arg("-a")
        .arg(example("archive"))
        .arg(&top)
        .status()
        .unwrap();
    assert!(status.success());
    let tarball = dir.path().join("hystax-ha-archive.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&staging)
        .arg("hystax_ha_archive")
        .status()
        .unwrap();
    assert!(status.success());
    let cluster_dir = dir.path().join("cluster");
    let root = prepare_archive(&tarball, &cluster_dir).await.unwrap();
    assert_eq!(root, cluster_dir.join("archive").join("hystax_ha_archive"));
    assert!(root.join("ansible/k8s-master.yaml").exists());
    // Unpacked once: a file added there survives a second call with the same tarball.
    std::fs::write(root.join("marker"), "x").unwrap();
    prepare_archive(&tarball, &cluster_dir).await.unwrap();
    assert!(root.join("marker").exists());
}

#[tokio::test]
async fn folder_is_used_as_is_and_a_wrong_archive_is_refused() {
    let root = prepare_archive(&example("archive"), std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    assert_eq!(root, example("archive"));
    let dir = tempfile::tempdir().unwrap();
    let e = prepare_archive(dir.path(), dir.path()).await.unwrap_err();
    assert!(e.to_string().contains("requirements.txt is missing"), "{e}");
    let e = prepare_archive(&dir.path().join("nope.tar.gz"), dir.path())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bootstrap.archive"), "{e}");
}
