//! Cinder (block storage v3, `/volume/v3/{project_id}`): volumes (created by Nova's
//! block-device mapping or directly), quotas.

use crate::paging::{self, Style, by_id};
use crate::server::{App, Ctx, More, g};
use crate::state::{Inner, Volume};
use crate::util::{self, Query, cinder_err, json_resp, q_get, s};
use axum::Router;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

pub fn routes(r: Router<App>) -> Router<App> {
    let p = "/volume/v3/{project}";
    r.route(&format!("{p}/volumes"), g(list).po(create))
        .route(&format!("{p}/volumes/detail"), g(list_detail))
        .route(&format!("{p}/volumes/{{id}}"), g(show).de(delete))
        .route(&format!("{p}/os-quota-sets/{{target}}"), g(quota))
}

/// (volumes, gigabytes) in use.
pub fn usage(inner: &Inner) -> (i64, i64) {
    (
        inner.volumes.len() as i64,
        inner.volumes.iter().map(|v| v.size).sum(),
    )
}

fn status(inner: &Inner, v: &Volume, now: Instant) -> &'static str {
    if v.gone_at.is_some() {
        return "deleting";
    }
    if now < v.available_at {
        return if v.image_id.is_some() {
            "downloading"
        } else {
            "creating"
        };
    }
    match v
        .server_id
        .as_ref()
        .and_then(|sid| inner.servers.iter().find(|s| &s.id == sid))
    {
        Some(srv) if srv.fail.is_some() && srv.built(now) => "available",
        Some(srv) if srv.built(now) => "in-use",
        Some(_) => "attaching",
        None => "available",
    }
}

fn links(c: &Ctx, id: &str) -> Value {
    let p = c.p("project");
    json!([{"href": format!("{}/volume/v3/{p}/volumes/{id}", c.base), "rel": "self"},
           {"href": format!("{}/volume/{p}/volumes/{id}", c.base), "rel": "bookmark"}])
}

fn volume_json(inner: &Inner, c: &Ctx, v: &Volume) -> Value {
    let now = Instant::now();
    let st = status(inner, v, now);
    let attachments = if st == "in-use" {
        let sid = v.server_id.clone().unwrap_or_default();
        json!([{"server_id": sid, "attachment_id": v.attachment_id, "host_name": null, "volume_id": v.id,
                "device": "/dev/vda", "id": v.id, "attached_at": v.created}])
    } else {
        json!([])
    };
    let mut out = json!({
        "attachments": attachments, "availability_zone": "nova",
        "bootable": if v.image_id.is_some() { "true" } else { "false" },
        "consistencygroup_id": null, "created_at": v.created, "description": v.description,
        "encrypted": false, "id": v.id, "links": links(c, &v.id), "metadata": v.metadata,
        "migration_status": null, "multiattach": false, "name": v.name,
        "os-vol-host-attr:host": null, "os-vol-mig-status-attr:migstat": null,
        "os-vol-mig-status-attr:name_id": null, "os-vol-tenant-attr:tenant_id": inner.cfg.project_id,
        "replication_status": null, "size": v.size, "snapshot_id": null, "source_volid": null,
        "status": st, "updated_at": null, "user_id": inner.cfg.users.first().map(|u| u.id.clone()),
        "volume_type": "__DEFAULT__", "provider_id": null, "group_id": null, "service_uuid": null,
        "shared_targets": true, "cluster_name": null, "volume_type_id": "5fed9d7c-401d-46e2-8e80-f30c70cb7e1d",
        "consumes_quota": true
    });
    if let Some(img) = &v.image_id
        && st != "creating"
        && st != "downloading"
    {
        let name = inner
            .cfg
            .images
            .iter()
            .find(|i| &i.id == img)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        out["volume_image_metadata"] = json!({"image_id": img, "image_name": name, "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
            "container_format": "bare", "disk_format": "qcow2", "min_disk": "0", "min_ram": "0", "size": "13167616"});
    }
    out
}

/// Cinder's `metadata` filter: a dict literal, JSON or Python style.
fn metadata_filter(q: &Query) -> Option<Map<String, Value>> {
    let raw = q_get(q, "metadata")?;
    serde_json::from_str(&raw.replace('\'', "\"")).ok()
}

fn filtered<'a>(inner: &'a Inner, q: &Query) -> Vec<&'a Volume> {
    let now = Instant::now();
    let meta = metadata_filter(q);
    inner
        .volumes
        .iter()
        .filter(|v| q_get(q, "name").is_none_or(|n| v.name.as_deref() == Some(n)))
        .filter(|v| q_get(q, "status").is_none_or(|st| st == status(inner, v, now)))
        .filter(|v| {
            meta.as_ref()
                .is_none_or(|m| m.iter().all(|(k, val)| v.metadata.get(k) == Some(val)))
        })
        .collect()
}

fn list(inner: &mut Inner, c: &Ctx) -> Response {
    let out: Vec<Value> = filtered(inner, &c.q)
        .iter()
        .map(|v| json!({"id": v.id, "name": v.name, "links": links(c, &v.id)}))
        .collect();
    paging::respond(inner, c, "volumes", out, Style::Cinder, by_id)
}

fn list_detail(inner: &mut Inner, c: &Ctx) -> Response {
    let out: Vec<Value> = filtered(inner, &c.q)
        .iter()
        .map(|v| volume_json(inner, c, v))
        .collect();
    paging::respond(inner, c, "volumes", out, Style::Cinder, by_id)
}

fn not_found(id: &str) -> Response {
    cinder_err(404, &format!("Volume {id} could not be found."))
}

fn show(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.volumes.iter().find(|v| v.id == c.p("id")) {
        Some(v) => json_resp(200, &json!({"volume": volume_json(inner, c, v)})),
        None => not_found(c.p("id")),
    }
}

fn create(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match util::parse_body(&c.body) {
        Ok(b) => b,
        Err(e) => return cinder_err(400, &e),
    };
    let v = &b["volume"];
    let size = match util::int_field(v.get("size")) {
        Ok(Some(n)) if n > 0 => n,
        _ => {
            return cinder_err(
                400,
                "Invalid input received: size must be an integer greater than 0",
            );
        }
    };
    let image_id = s(v, "imageRef");
    if let Some(img) = &image_id
        && !inner.cfg.images.iter().any(|i| &i.id == img)
    {
        return cinder_err(
            400,
            &format!(
                "Invalid image identifier or unable to access requested image. (HTTP 404) Image {img} could not be found."
            ),
        );
    }
    let (n, gb) = usage(inner);
    let q = &inner.cfg.quotas;
    if q.gigabytes >= 0 && gb + size > q.gigabytes {
        return json_resp(
            413,
            &json!({"overLimit": {"code": 413, "message": format!(
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {}G and {gb}G has been consumed.", q.gigabytes), "retryAfter": "0"}}),
        );
    }
    if q.volumes >= 0 && n + 1 > q.volumes {
        return json_resp(
            413,
            &json!({"overLimit": {"code": 413, "message": format!(
            "VolumeLimitExceeded: Maximum number of volumes allowed ({}) exceeded for quota 'volumes'.", q.volumes), "retryAfter": "0"}}),
        );
    }
    let vol = Volume {
        id: util::uuid(),
        name: s(v, "name"),
        description: s(v, "description"),
        size,
        image_id,
        metadata: v["metadata"].as_object().cloned().unwrap_or_default(),
        created: util::now_micro(),
        available_at: Instant::now() + Duration::from_millis(inner.delays.volume_create),
        server_id: None,
        attachment_id: util::uuid(),
        gone_at: None,
    };
    let out = volume_json(inner, c, &vol);
    inner.volumes.push(vol);
    json_resp(202, &json!({ "volume": out }))
}

fn delete(inner: &mut Inner, c: &Ctx) -> Response {
    let now = Instant::now();
    let ms = inner.delays.volume_delete;
    let Some(idx) = inner.volumes.iter().position(|v| v.id == c.p("id")) else {
        return not_found(c.p("id"));
    };
    let st = status(inner, &inner.volumes[idx], now);
    if st == "deleting" {
        return util::empty(202);
    }
    if st != "available" {
        return cinder_err(
            400,
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.",
        );
    }
    let v = &mut inner.volumes[idx];
    v.gone_at = Some(now + Duration::from_millis(ms));
    // Detach from an errored server so its later delete does not touch it twice.
    v.server_id = None;
    util::empty(202)
}

fn quota(inner: &mut Inner, c: &Ctx) -> Response {
    let (n, gb) = usage(inner);
    let q = &inner.cfg.quotas;
    let usage = c.q.iter().any(|(k, v)| k == "usage" && v == "true");
    let item = |limit: i64, used: i64| {
        if usage {
            json!({"in_use": used, "limit": limit, "reserved": 0, "allocated": 0})
        } else {
            json!(limit)
        }
    };
    json_resp(
        200,
        &json!({"quota_set": {
            "id": c.p("target"),
            "volumes": item(q.volumes, n), "gigabytes": item(q.gigabytes, gb),
            "snapshots": item(10, 0), "backups": item(10, 0), "backup_gigabytes": item(1000, 0),
            "per_volume_gigabytes": item(-1, 0), "groups": item(10, 0),
            "volumes___DEFAULT__": item(-1, n), "gigabytes___DEFAULT__": item(-1, gb), "snapshots___DEFAULT__": item(-1, 0)
        }}),
    )
}
