//! Glance: the image by ID or by name (the newest active one of that name).

use acura_ha_api::provider::ProviderError;
use serde_json::Value;

use crate::client::{Service, Session, q};

pub(crate) struct Image {
    pub id: String,
    pub name: String,
    pub min_disk_gb: u64,
}

fn from(v: &Value) -> Image {
    Image {
        id: crate::js(v, "id"),
        name: crate::js(v, "name"),
        min_disk_gb: v["min_disk"].as_u64().unwrap_or(0),
    }
}

/// Picks the image from the images of `GET /v2/images` (every page): active, newest
/// `created_at` first.
pub(crate) fn pick(list: &[Value]) -> Option<Image> {
    let mut images: Vec<&Value> = list
        .iter()
        .filter(|i| i["status"].as_str().is_none_or(|s| s == "active"))
        .collect();
    images.sort_by_key(|i| std::cmp::Reverse(crate::js(i, "created_at")));
    images.first().map(|i| from(i))
}

pub(crate) async fn image(s: &Session, name_or_id: &str) -> Result<Image, ProviderError> {
    let resource = format!("openstack.image = {name_or_id}");
    let by_name = s
        .list(
            Service::Image,
            &format!("/images?name={}", q(name_or_id)),
            "images",
        )
        .await
        .map_err(|e| e.into_provider(&resource))?;
    if let Some(i) = pick(&by_name) {
        return Ok(i);
    }
    match s
        .get(Service::Image, &format!("/images/{}", q(name_or_id)))
        .await
    {
        Ok(v) if v.get("id").is_some() => Ok(from(&v)),
        Ok(_) => Err(not_found(&resource)),
        Err(e) if e.not_found() || e.status == Some(400) => Err(not_found(&resource)),
        Err(e) => Err(e.into_provider(&resource)),
    }
}

fn not_found(resource: &str) -> ProviderError {
    ProviderError::Cloud {
        resource: resource.to_string(),
        message: "no active image with this name or ID (see `openstack image list`)".into(),
        request_id: None,
    }
}
