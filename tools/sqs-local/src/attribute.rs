//! A message attribute's value as the endpoint keeps it. It has a module of its own because the
//! message (validation, size), its digests ([`checksum`](crate::checksum)) and the wire documents
//! ([`protocol`](crate::protocol)) all use it, and none of them should depend on another for it.

/// A message attribute value (`MessageAttributeValue` on the wire), binary values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeValue {
    pub data_type: String,
    pub string_value: Option<String>,
    pub binary_value: Option<Vec<u8>>,
    /// Reserved by SQS ("not implemented"); kept so that a client that sends them gets them back.
    pub string_list_values: Vec<String>,
    pub binary_list_values: Vec<Vec<u8>>,
}

impl AttributeValue {
    /// Bytes this attribute adds to the message size: name, data type and value.
    pub(crate) fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string_value.as_ref().map_or(0, String::len)
            + self.binary_value.as_ref().map_or(0, Vec::len)
            + self
                .string_list_values
                .iter()
                .map(String::len)
                .sum::<usize>()
            + self.binary_list_values.iter().map(Vec::len).sum::<usize>()
    }

    /// A string-valued attribute (`String`, `Number`, with or without a label), for tests.
    #[cfg(test)]
    pub(crate) fn text(data_type: &str, value: &str) -> Self {
        Self {
            data_type: data_type.into(),
            string_value: Some(value.into()),
            ..Self::default()
        }
    }
}
