//! A local HTTP receiver standing in for a Slack incoming webhook: records every POST body and
//! can answer the first N requests with an error. Runs on 127.0.0.1 and stops on drop.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::oneshot;

#[derive(Default)]
struct State {
    bodies: Vec<String>,
    fail_first: usize,
    seen: usize,
}

/// A running receiver.
pub struct Receiver {
    state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT/services/T000/B000/SECRETTOKEN`: the "webhook URL".
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts a receiver that answers 500 to the first `fail_first` posts and 200 after.
    pub async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            fail_first,
            ..Default::default()
        }));
        let s = state.clone();
        let app = Router::new().route(
            "/services/{*rest}",
            post(move |body: String| {
                let s = s.clone();
                async move {
                    let mut st = s.lock().unwrap();
                    st.seen += 1;
                    if st.seen <= st.fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    st.bodies.push(body);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/T0DATADUMP/B0HOOK/xoxb-webhook-secret-token",
            listener.local_addr().unwrap()
        );
        let stop = super::net::serve(listener, app);
        Receiver {
            state,
            url,
            stop: Some(stop),
        }
    }

    /// Bodies of the successful posts.
    pub fn messages(&self) -> Vec<String> {
        self.state.lock().unwrap().bodies.clone()
    }

    /// Every post, failed ones included.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().seen
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
