//! v4 association batch reads: chunked to 1,000 inputs and following each input's own paging
//! until every association of every `from` record is in.

use std::collections::BTreeMap;

use serde_json::json;

use super::{ASSOCIATION_BATCH_SIZE, segment};
use crate::client::{Call, HubSpotClient};
use crate::error::HubSpotError;
use crate::types::{AssociationBatch, AssociationBatchResult, BatchResponse, ObjectAssociations};

impl HubSpotClient {
    fn associations_path(&self, from: &str, to: &str) -> String {
        let family = self
            .config()
            .family("/crm/v4/associations", "/crm/associations");
        format!("{family}/{}/{}/batch/read", segment(from), segment(to))
    }

    /// All associations from each of `ids` (of type `from_type`) to records of `to_type`.
    /// Inputs HubSpot reports on (unknown ids, ids without associations) are in `errors`;
    /// [`crate::StandardError::failed_ids`] names them. A request that still fails after the
    /// client's retries fails the whole call: nothing was written, so the caller reads again.
    pub async fn batch_read_associations(
        &self,
        from_type: &str,
        to_type: &str,
        ids: &[String],
    ) -> Result<AssociationBatch, HubSpotError> {
        let path = self.associations_path(from_type, to_type);
        let mut gathered: BTreeMap<String, ObjectAssociations> = BTreeMap::new();
        let mut errors = Vec::new();
        // (id, cursor) pairs still to read; a cursor means "continue this input's paging".
        let mut pending: Vec<(String, Option<String>)> =
            ids.iter().map(|id| (id.clone(), None)).collect();
        while !pending.is_empty() {
            let mut next_round = Vec::new();
            for chunk in pending.chunks(ASSOCIATION_BATCH_SIZE) {
                let inputs: Vec<_> = chunk
                    .iter()
                    .map(|(id, after)| match after {
                        Some(after) => json!({ "id": id, "after": after }),
                        None => json!({ "id": id }),
                    })
                    .collect();
                let call = Call::post(
                    "associations.batch_read",
                    path.clone(),
                    &json!({ "inputs": inputs }),
                )?
                .idempotent();
                let (_, response): (u16, BatchResponse<AssociationBatchResult>) =
                    self.execute(&call).await?;
                for result in response.results {
                    let from_id = result.from.id.clone();
                    if let Some(after) = result
                        .paging
                        .as_ref()
                        .and_then(|p| p.next.as_ref())
                        .map(|n| n.after.clone())
                    {
                        next_round.push((from_id.clone(), Some(after)));
                    }
                    gathered
                        .entry(from_id.clone())
                        .or_insert_with(|| ObjectAssociations {
                            from_id,
                            to: Vec::new(),
                        })
                        .to
                        .extend(result.to);
                }
                errors.extend(response.errors);
            }
            pending = next_round;
        }
        Ok(AssociationBatch {
            results: gathered.into_values().collect(),
            errors,
        })
    }
}
