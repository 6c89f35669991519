//! CRM objects: list (as a stream over every page), get, create, update, archive, the batch
//! calls chunked to HubSpot's 100 inputs, and merge.

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use super::{OBJECT_BATCH_SIZE, segment};
use crate::client::{Call, HubSpotClient};
use crate::error::{FailedChunk, HubSpotError};
use crate::types::{
    BatchResponse, CreateInput, CrmObject, ObjectId, Page, StandardError, UpdateInput,
};

/// What a list should return.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Properties to return (HubSpot's defaults when empty).
    pub properties: Vec<String>,
    /// Object types whose associations to embed (v3 style).
    pub associations: Vec<String>,
    /// List the recycle bin instead.
    pub archived: bool,
    /// Records per page, at most 100.
    pub page_size: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            properties: Vec::new(),
            associations: Vec::new(),
            archived: false,
            page_size: 100,
        }
    }
}

impl HubSpotClient {
    pub(crate) fn objects_path(&self, object_type: &str) -> String {
        format!(
            "{}/{}",
            self.config().family("/crm/v3/objects", "/crm/objects"),
            segment(object_type)
        )
    }

    /// One page of a list; `after` is the cursor from the previous page.
    pub async fn list_objects_page(
        &self,
        object_type: &str,
        options: &ListOptions,
        after: Option<&str>,
    ) -> Result<Page<CrmObject>, HubSpotError> {
        let mut call = Call::get("objects.list", self.objects_path(object_type))
            .query("limit", options.page_size.clamp(1, 100).to_string())
            .query("archived", options.archived.to_string());
        if !options.properties.is_empty() {
            call = call.query("properties", options.properties.join(","));
        }
        if !options.associations.is_empty() {
            call = call.query("associations", options.associations.join(","));
        }
        if let Some(after) = after {
            call = call.query("after", after);
        }
        Ok(self.execute(&call).await?.1)
    }

    /// Every record of `object_type`, page after page until HubSpot sends no cursor.
    pub fn list_objects(
        &self,
        object_type: &str,
        options: ListOptions,
    ) -> BoxStream<'static, Result<CrmObject, HubSpotError>> {
        let client = self.clone();
        let object_type = object_type.to_owned();
        // State: Some(cursor) while pages remain; the first page has no cursor.
        stream::try_unfold(Some(None::<String>), move |state| {
            let client = client.clone();
            let object_type = object_type.clone();
            let options = options.clone();
            async move {
                let Some(after) = state else { return Ok(None) };
                let page = client
                    .list_objects_page(&object_type, &options, after.as_deref())
                    .await?;
                let next = page.next_after().map(|a| Some(a.to_owned()));
                Ok(Some((stream::iter(page.results.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// One record by id (or by a unique property with `id_property`).
    pub async fn get_object(
        &self,
        object_type: &str,
        id: &str,
        properties: &[&str],
        id_property: Option<&str>,
    ) -> Result<CrmObject, HubSpotError> {
        let mut call = Call::get(
            "objects.get",
            format!("{}/{}", self.objects_path(object_type), segment(id)),
        );
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        if let Some(id_property) = id_property {
            call = call.query("idProperty", id_property);
        }
        Ok(self.execute(&call).await?.1)
    }

    /// Creates one record. Not resent when HubSpot's answer leaves open whether it was created
    /// ([`HubSpotError::OutcomeUnknown`]).
    pub async fn create_object(
        &self,
        object_type: &str,
        input: &CreateInput,
    ) -> Result<CrmObject, HubSpotError> {
        let call = Call::post("objects.create", self.objects_path(object_type), input)?;
        Ok(self.execute(&call).await?.1)
    }

    /// Updates one record's properties.
    pub async fn update_object(
        &self,
        object_type: &str,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<CrmObject, HubSpotError> {
        let path = format!("{}/{}", self.objects_path(object_type), segment(id));
        let call = Call::post("objects.update", path, &json!({ "properties": properties }))?
            .method(Method::PATCH)
            .idempotent();
        Ok(self.execute(&call).await?.1)
    }

    /// Moves one record to the recycle bin.
    pub async fn archive_object(&self, object_type: &str, id: &str) -> Result<(), HubSpotError> {
        let path = format!("{}/{}", self.objects_path(object_type), segment(id));
        let call = Call::get("objects.archive", path).method(Method::DELETE);
        let _: (u16, serde_json::Value) = self.execute(&call).await?;
        Ok(())
    }

    /// Reads records by id, 100 per request.
    ///
    /// Ids HubSpot cannot find, or a request of 100 that fails as a whole, make it a
    /// [`HubSpotError::PartialBatch`] carrying every record that was read; see
    /// [`HubSpotClient::batch_update`] for which failures stop the call early.
    pub async fn batch_read(
        &self,
        object_type: &str,
        ids: &[String],
        properties: &[&str],
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let path = format!("{}/batch/read", self.objects_path(object_type));
        self.batched(
            ids,
            |id| Some(id.clone()),
            |chunk| {
                let inputs: Vec<_> = chunk.iter().map(|id| ObjectId { id: id.clone() }).collect();
                Ok(Call::post(
                    "objects.batch_read",
                    path.clone(),
                    &json!({ "inputs": inputs, "properties": properties }),
                )?
                .idempotent())
            },
        )
        .await
    }

    /// Creates records, 100 per request. Give each input a unique `object_write_trace_id` to get
    /// per-input failures back in [`HubSpotError::PartialBatch`] (without them HubSpot fails
    /// the whole request of 100 for one bad input).
    ///
    /// A request that fails as a whole is reported in `failed_chunks` by input positions (and
    /// trace ids); see [`HubSpotClient::batch_update`]. Creates are never resent after an
    /// answer that leaves open whether HubSpot created the records (5xx, 423, 477, a lost
    /// connection): that request's chunk has the cause [`HubSpotError::OutcomeUnknown`], the
    /// call stops, and the inputs after it form one chunk with the cause
    /// [`HubSpotError::NotSent`]. Records of an `OutcomeUnknown` or `Decode` chunk may have
    /// been created: look them up before creating them again.
    pub async fn batch_create(
        &self,
        object_type: &str,
        inputs: &[CreateInput],
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let path = format!("{}/batch/create", self.objects_path(object_type));
        self.batched(
            inputs,
            |input| input.object_write_trace_id.clone(),
            |chunk| {
                Call::post(
                    "objects.batch_create",
                    path.clone(),
                    &json!({ "inputs": chunk }),
                )
            },
        )
        .await
    }

    /// Updates records by id, 100 per request.
    ///
    /// Nothing written is ever lost from the answer. When anything fails the call returns
    /// [`HubSpotError::PartialBatch`] with `succeeded` (every record HubSpot confirmed, from
    /// all requests), `errors` (per-input 207 failures) and `failed_chunks` (requests of 100
    /// that failed as a whole, by input positions and ids, with the cause). A request failing
    /// for its own contents (validation, not found, conflict, an unreadable answer) does not
    /// stop the later ones. A failure every later request would meet too (credentials, scopes,
    /// daily quota, rate limit, HubSpot or the network down, no budget) stops the call: the
    /// failed request and all later inputs form one failed chunk, none of them written, and
    /// its `cause.is_retryable()` says whether to send them again later. When no request
    /// succeeded and one failure covers every input, that failure is returned as it is.
    pub async fn batch_update(
        &self,
        object_type: &str,
        inputs: &[UpdateInput],
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let path = format!("{}/batch/update", self.objects_path(object_type));
        self.batched(
            inputs,
            |input| Some(input.id.clone()),
            |chunk| {
                Ok(Call::post(
                    "objects.batch_update",
                    path.clone(),
                    &json!({ "inputs": chunk }),
                )?
                .idempotent())
            },
        )
        .await
    }

    /// Creates or updates records by a unique property (`id_property`), 100 per request.
    /// Each result's `created` says whether it was new. Failures are reported as for
    /// [`HubSpotClient::batch_update`]; ids are the inputs' `id` values.
    pub async fn batch_upsert(
        &self,
        object_type: &str,
        inputs: &[UpdateInput],
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let path = format!("{}/batch/upsert", self.objects_path(object_type));
        self.batched(
            inputs,
            |input| Some(input.id.clone()),
            |chunk| {
                Ok(Call::post(
                    "objects.batch_upsert",
                    path.clone(),
                    &json!({ "inputs": chunk }),
                )?
                .idempotent())
            },
        )
        .await
    }

    /// Archives records by id, 100 per request. HubSpot answers nothing per record, so a
    /// [`HubSpotError::PartialBatch`] here has an empty `succeeded`: every id not in its
    /// `failed_ids` was archived. Failures are otherwise reported as for
    /// [`HubSpotClient::batch_update`].
    pub async fn batch_archive(
        &self,
        object_type: &str,
        ids: &[String],
    ) -> Result<(), HubSpotError> {
        let path = format!("{}/batch/archive", self.objects_path(object_type));
        self.batched(
            ids,
            |id| Some(id.clone()),
            |chunk| {
                let inputs: Vec<_> = chunk.iter().map(|id| ObjectId { id: id.clone() }).collect();
                Ok(Call::post(
                    "objects.batch_archive",
                    path.clone(),
                    &json!({ "inputs": inputs }),
                )?
                .idempotent())
            },
        )
        .await
        .map(drop)
    }

    /// Merges `object_id_to_merge` into `primary_object_id`; returns the surviving record.
    /// Not resent when HubSpot's answer leaves open whether the merge happened
    /// ([`HubSpotError::OutcomeUnknown`]): read both records to find out.
    pub async fn merge_objects(
        &self,
        object_type: &str,
        primary_object_id: &str,
        object_id_to_merge: &str,
    ) -> Result<CrmObject, HubSpotError> {
        let path = format!("{}/merge", self.objects_path(object_type));
        let body =
            json!({ "primaryObjectId": primary_object_id, "objectIdToMerge": object_id_to_merge });
        Ok(self
            .execute(&Call::post("objects.merge", path, &body)?)
            .await?
            .1)
    }

    /// Runs one batch call per chunk of 100 and gathers results, 207 errors and chunks that
    /// failed as a whole, so that no successful chunk is lost (the policy is documented on
    /// [`HubSpotClient::batch_update`]). `id_of` names an input in the report.
    async fn batched<I: Serialize>(
        &self,
        inputs: &[I],
        id_of: impl Fn(&I) -> Option<String>,
        make_call: impl Fn(&[I]) -> Result<Call, HubSpotError>,
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let mut succeeded = Vec::with_capacity(inputs.len());
        let mut errors: Vec<StandardError> = Vec::new();
        let mut failed_chunks: Vec<FailedChunk> = Vec::new();
        let mut any_request_succeeded = false;
        let mut start = 0;
        while start < inputs.len() {
            let end = (start + OBJECT_BATCH_SIZE).min(inputs.len());
            // Archive answers 204 without a body, hence `Option`.
            let outcome: Result<(u16, Option<BatchResponse<CrmObject>>), HubSpotError> =
                match make_call(&inputs[start..end]) {
                    Ok(call) => self.execute(&call).await,
                    Err(error) => Err(error),
                };
            match outcome {
                Ok((_, response)) => {
                    any_request_succeeded = true;
                    if let Some(response) = response {
                        succeeded.extend(response.results);
                        errors.extend(response.errors);
                    }
                }
                Err(cause) => {
                    // HubSpot may have acted on this request: it is reported alone, so the
                    // caller checks only these inputs, and the unsent rest as never sent.
                    if let HubSpotError::OutcomeUnknown { operation, .. } = &cause {
                        let operation = *operation;
                        failed_chunks.push(FailedChunk {
                            ids: inputs[start..end].iter().filter_map(&id_of).collect(),
                            inputs: start..end,
                            cause,
                        });
                        if end < inputs.len() {
                            failed_chunks.push(FailedChunk {
                                ids: inputs[end..].iter().filter_map(&id_of).collect(),
                                inputs: end..inputs.len(),
                                cause: HubSpotError::NotSent { operation },
                            });
                        }
                        break;
                    }
                    // A failure later requests would meet too ends the call here; the inputs
                    // not sent are reported with it.
                    let stop = !cause.concerns_only_this_request();
                    let covered = if stop {
                        start..inputs.len()
                    } else {
                        start..end
                    };
                    failed_chunks.push(FailedChunk {
                        ids: inputs[covered.clone()].iter().filter_map(&id_of).collect(),
                        inputs: covered,
                        cause,
                    });
                    if stop {
                        break;
                    }
                }
            }
            start = end;
        }
        if errors.is_empty() && failed_chunks.is_empty() {
            return Ok(succeeded);
        }
        // Nothing done and one cause for every input: the plain error, as for a single call.
        let one_cause_for_all =
            matches!(failed_chunks.as_slice(), [only] if only.inputs == (0..inputs.len()));
        if !any_request_succeeded
            && errors.is_empty()
            && one_cause_for_all
            && let Some(only) = failed_chunks.pop()
        {
            return Err(only.cause);
        }
        let failed_ids = errors
            .iter()
            .flat_map(StandardError::failed_ids)
            .chain(failed_chunks.iter().flat_map(|c| c.ids.iter().cloned()))
            .collect();
        Err(HubSpotError::PartialBatch {
            succeeded,
            failed_ids,
            errors,
            failed_chunks,
        })
    }
}
