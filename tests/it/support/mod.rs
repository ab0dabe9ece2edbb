//! The shared test harness: real parts (moto, PostgreSQL, odbc2parquet) started per test on free
//! loopback ports, a real kube-apiserver with etcd shared by the test binary (`kube`: a
//! namespace, the chart's RBAC and a fault proxy per test), and `cluster`, which puts them
//! together with the real controller binary.
#![allow(dead_code)]

pub mod cluster;
pub mod faultproxy;
pub mod kube;
pub mod moto;
pub mod net;
pub mod pki;
pub mod postgres;
pub mod receiver;
