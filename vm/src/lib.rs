//! A Squeak bytecode interpreter over cowheap tenants and a plain flat heap.
