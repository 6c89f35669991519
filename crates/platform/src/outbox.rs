//! Transactional outbox. (In progress.)
