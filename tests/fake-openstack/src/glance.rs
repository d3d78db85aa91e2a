//! Glance (image v2): images list/show with `name`, `status` and `visibility` filters.

use crate::paging::{self, Style, by_id};
use crate::server::{App, Ctx, g};
use crate::state::Inner;
use crate::util::{glance_err, json_resp, q_get};
use axum::Router;
use axum::response::Response;
use serde_json::{Value, json};

pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/image/v2/images", g(list))
        .route("/image/v2/images/{id}", g(show))
}

fn image_json(i: &crate::config::ImageSpec, owner: &str) -> Value {
    json!({
        "status": i.status, "name": i.name, "tags": [], "container_format": "bare",
        "created_at": "2024-05-05T17:15:10Z", "disk_format": "qcow2", "updated_at": "2024-05-05T17:15:11Z",
        "visibility": "public", "self": format!("/v2/images/{}", i.id), "min_disk": i.min_disk,
        "protected": false, "id": i.id, "file": format!("/v2/images/{}/file", i.id),
        "checksum": "64d7c1cd2b6f60c92c14662941cb7913", "os_hash_algo": "sha512",
        "os_hash_value": "073b4523583784fbe01daff81eba092a262ec37ba6d04dd3f52e4cd5c93eb8258af44881345ecda0e49f3d8cc6d2df6b050ff3e72681d723234aff9d17d0cf09",
        "os_hidden": false, "owner": owner, "size": 13167616, "min_ram": 0,
        "schema": "/v2/schemas/image", "virtual_size": null
    })
}

/// `name=<exact>` or `name=in:"a,b",c`.
fn name_matches(filter: &str, name: &str) -> bool {
    match filter.strip_prefix("in:") {
        Some(list) => list
            .split(',')
            .map(|n| n.trim_matches('"'))
            .any(|n| n == name),
        None => filter == name,
    }
}

fn list(inner: &mut Inner, c: &Ctx) -> Response {
    let owner = inner.cfg.project_id.clone();
    let images: Vec<Value> = inner
        .cfg
        .images
        .iter()
        .filter(|i| q_get(&c.q, "name").is_none_or(|n| name_matches(n, &i.name)))
        .filter(|i| q_get(&c.q, "status").is_none_or(|s| s == i.status))
        .filter(|i| q_get(&c.q, "id").is_none_or(|s| s == i.id))
        .filter(|_| q_get(&c.q, "visibility").is_none_or(|v| v == "public" || v == "all"))
        .map(|i| image_json(i, &owner))
        .collect();
    match paging::page(inner, c, "images", images, Style::Glance, by_id) {
        Ok(mut body) => {
            body["schema"] = json!("/v2/schemas/images");
            json_resp(200, &body)
        }
        Err(e) => e,
    }
}

fn show(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.cfg.images.iter().find(|i| i.id == c.p("id")) {
        Some(i) => json_resp(200, &image_json(i, &inner.cfg.project_id)),
        None => glance_err(404, &format!("No image found with ID {}", c.p("id"))),
    }
}
