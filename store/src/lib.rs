//! A store for tenants and bases shared by many nodes.
