//! AMQP: connection, topology, confirmed publishing and consuming. (In progress.)
