//! One integration-test binary (one link step for the whole suite): every test here talks to real
//! parts started on 127.0.0.1 by `support`, and stops them when it ends.

mod support;

mod api;
mod chart;
mod controller;
mod emulator;
mod faults;
mod glibc;
mod hygiene;
mod install;
mod kube_harness;
mod kubectl;
mod layers;
mod pg_engine;
mod pg_tls;
mod publish;
mod readers;
mod run;
mod schedule;
mod ship;
mod soak;
mod worker;
mod worker_faults;
