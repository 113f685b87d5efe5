//! `sortie launch --web ADDR:PORT`: the live dashboard and `/metrics`, served with axum while
//! the launch runs.
//!
//! A consumer of the launch's events like the terminal view: each event goes into one
//! [`PageFold`]; `/` serves the report page (the same file as `report.html`, in live mode),
//! `/events` streams fresh page data to it as server-sent events (at most four a second), and
//! `/metrics` renders the fold in Prometheus' text format. It binds to loopback unless
//! `--web-public` asks for another address; then every request needs the token printed at
//! start (`?token=` or `Authorization: Bearer`). Nothing secret is served: the page and the
//! metrics come from the events, which hold no environment value.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use sortie_report::launch::{metrics, render_html, LaunchEvent, PageFold};
use tokio::sync::watch;

/// The least time between two pages of data sent to a browser.
const THROTTLE: Duration = Duration::from_millis(250);

struct Shared {
    fold: Mutex<PageFold>,
    version: watch::Sender<u64>,
    token: Option<String>,
}

/// The running dashboard; feed it the launch's events with [`Dashboard::event`].
pub struct Dashboard {
    shared: Arc<Shared>,
}

impl Dashboard {
    /// Checks `addr` (loopback, or `public` asked for), binds it and starts serving. Prints
    /// where, and the token when one is needed. Fails before any host is contacted.
    pub async fn start(addr: SocketAddr, public: bool, run_id: &str) -> miette::Result<Self> {
        let loopback = addr.ip().is_loopback();
        if !loopback && !public {
            return Err(miette::miette!(
                code = "sortie::web::public",
                help = "use a loopback address (127.0.0.1:8089), or add --web-public to serve \
                        the dashboard beyond this machine (it then requires a printed token)",
                "--web {addr}: not a loopback address; nothing was contacted"
            ));
        }
        let token = (!loopback).then(|| {
            (0..4)
                .map(|_| format!("{:08x}", fastrand::u32(..)))
                .collect::<String>()
        });
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            miette::miette!(
                code = "sortie::web::bind",
                "--web {addr}: cannot listen there: {e}; nothing was contacted"
            )
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            fold: Mutex::new(PageFold::new(run_id)),
            version,
            token: token.clone(),
        });
        let app = Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/metrics", get(metrics_text))
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("sortie: the dashboard stopped: {e}");
            }
        });
        match &token {
            None => eprintln!("dashboard: http://{addr}/  metrics: http://{addr}/metrics"),
            Some(t) => {
                eprintln!(
                    "sortie: warning: the dashboard listens on {addr}, beyond this machine; \
                     anyone who can reach it and holds the token sees the run"
                );
                eprintln!(
                    "dashboard: http://{addr}/?token={t}  metrics: http://{addr}/metrics \
                     (Authorization: Bearer {t})"
                );
            }
        }
        Ok(Dashboard { shared })
    }

    /// Takes one event of the launch into account.
    pub fn event(&self, ev: &LaunchEvent) {
        if let Ok(mut f) = self.shared.fold.lock() {
            f.apply(ev);
        }
        self.shared.version.send_modify(|v| *v += 1);
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Whether the request may see the run: always on loopback, with the token otherwise.
fn allowed(shared: &Shared, q: &TokenQuery, headers: &HeaderMap) -> bool {
    let Some(want) = &shared.token else {
        return true;
    };
    let bearer = (headers.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    q.token.as_deref() == Some(want.as_str()) || bearer == Some(want.as_str())
}

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, "token required\n").into_response()
}

async fn page(
    State(s): State<Arc<Shared>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&s, &q, &headers) {
        return refused();
    }
    let data = s.fold.lock().map(|f| f.data(true));
    match data {
        Ok(d) => Html(render_html(&d)).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn metrics_text(
    State(s): State<Arc<Shared>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&s, &q, &headers) {
        return refused();
    }
    let text = s.fold.lock().map(|f| metrics::render(&f));
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], t).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn events(
    State(s): State<Arc<Shared>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&s, &q, &headers) {
        return refused();
    }
    Sse::new(data_stream(s))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The page's data now, then again after each change (throttled).
fn data_stream(s: Arc<Shared>) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut rx = s.version.subscribe();
    rx.mark_changed();
    futures_util::stream::unfold((s, rx), |(s, mut rx)| async move {
        rx.changed().await.ok()?;
        // Changes in the next moment go into the same page of data.
        tokio::time::sleep(THROTTLE).await;
        rx.mark_unchanged();
        let json = s.fold.lock().ok()?.data(true).to_embedded_json();
        Some((Ok(Event::default().data(json)), (s, rx)))
    })
}
