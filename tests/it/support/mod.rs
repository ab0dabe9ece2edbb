//! The shared test harness: real parts (moto, PostgreSQL, odbc2parquet) started per test on free
//! loopback ports, the Kubernetes API stand-in (`apiserver`), and `cluster`, which puts them
//! together with the real controller binary.
#![allow(dead_code)]

pub mod apiserver;
pub mod cluster;
pub mod faultproxy;
pub mod kube;
pub mod moto;
pub mod net;
pub mod postgres;
pub mod receiver;
