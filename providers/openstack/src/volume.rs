//! Cinder: the root volumes a server leaves behind (normally deleted with it, since
//! `delete_on_termination` is true; this makes sure).

use acura_ha_api::provider::ProviderError;

use crate::client::{Service, Session};

/// Deletes those of `ids` that still exist once their servers are gone.
pub(crate) async fn delete_leftovers(
    s: &Session,
    ids: &[String],
    quiet: bool,
) -> Result<(), ProviderError> {
    if ids.is_empty() || !s.has(Service::Volume) {
        return Ok(());
    }
    let list = s
        .list(Service::Volume, "/volumes/detail", "volumes")
        .await
        .map_err(|e| e.into_provider("volumes"))?;
    for v in &list {
        let id = crate::js(v, "id");
        if !ids.contains(&id) || crate::js(v, "status") == "deleting" {
            continue;
        }
        crate::progress(quiet, &format!("delete leftover volume {id}"));
        s.delete(Service::Volume, &format!("/volumes/{id}"))
            .await
            .map_err(|e| e.into_provider(&format!("volume {id}")))?;
    }
    Ok(())
}
