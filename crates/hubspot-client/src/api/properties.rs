//! Properties and property groups. Creating one that already exists is not an error here:
//! HubSpot answers 409, and the existing definition is fetched and returned instead. That
//! makes the creates safe to resend (names are unique: a create that went through unseen
//! answers 409 the second time), so they are retried like reads.

use super::segment;
use crate::client::{Call, HubSpotClient};
use crate::error::HubSpotError;
use crate::types::{Page, Property, PropertyCreate, PropertyGroup};

impl HubSpotClient {
    fn properties_path(&self, object_type: &str) -> String {
        format!(
            "{}/{}",
            self.config()
                .family("/crm/v3/properties", "/crm/properties"),
            segment(object_type)
        )
    }

    /// Every property defined on `object_type`.
    pub async fn list_properties(&self, object_type: &str) -> Result<Vec<Property>, HubSpotError> {
        let call = Call::get("properties.list", self.properties_path(object_type));
        let (_, page): (u16, Page<Property>) = self.execute(&call).await?;
        Ok(page.results)
    }

    /// One property by name.
    pub async fn get_property(
        &self,
        object_type: &str,
        name: &str,
    ) -> Result<Property, HubSpotError> {
        let call = Call::get(
            "properties.get",
            format!("{}/{}", self.properties_path(object_type), segment(name)),
        );
        Ok(self.execute(&call).await?.1)
    }

    /// Creates a property, or returns the existing one of that name (HubSpot's 409).
    /// The caller compares the returned definition with what it wanted.
    pub async fn create_property(
        &self,
        object_type: &str,
        property: &PropertyCreate,
    ) -> Result<Property, HubSpotError> {
        let call = Call::post(
            "properties.create",
            self.properties_path(object_type),
            property,
        )?
        .idempotent();
        match self.execute(&call).await {
            Ok((_, created)) => Ok(created),
            Err(HubSpotError::Conflict { .. }) => {
                self.get_property(object_type, &property.name).await
            }
            Err(other) => Err(other),
        }
    }

    /// Every property group of `object_type`.
    pub async fn list_property_groups(
        &self,
        object_type: &str,
    ) -> Result<Vec<PropertyGroup>, HubSpotError> {
        let call = Call::get(
            "properties.groups.list",
            format!("{}/groups", self.properties_path(object_type)),
        );
        let (_, page): (u16, Page<PropertyGroup>) = self.execute(&call).await?;
        Ok(page.results)
    }

    /// One property group by name.
    pub async fn get_property_group(
        &self,
        object_type: &str,
        name: &str,
    ) -> Result<PropertyGroup, HubSpotError> {
        let path = format!(
            "{}/groups/{}",
            self.properties_path(object_type),
            segment(name)
        );
        Ok(self
            .execute(&Call::get("properties.groups.get", path))
            .await?
            .1)
    }

    /// Creates a property group, or returns the existing one of that name.
    pub async fn create_property_group(
        &self,
        object_type: &str,
        group: &PropertyGroup,
    ) -> Result<PropertyGroup, HubSpotError> {
        let path = format!("{}/groups", self.properties_path(object_type));
        let call = Call::post("properties.groups.create", path, group)?.idempotent();
        match self.execute(&call).await {
            Ok((_, created)) => Ok(created),
            Err(HubSpotError::Conflict { .. }) => {
                self.get_property_group(object_type, &group.name).await
            }
            Err(other) => Err(other),
        }
    }
}
