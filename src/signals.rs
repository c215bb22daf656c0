//! Signals other than SIGTERM/SIGINT (those drain; see `app`): their default action would end
//! the process without a drain. SIGHUP refreshes the flag set now (as an admin refresh does);
//! SIGUSR1 and SIGUSR2 are logged and otherwise ignored.

use std::sync::Arc;

use crate::refresh::Refresher;

/// Install the handlers at once (a signal arriving before is fatal), then serve them in a task.
pub(crate) fn handle_others(refresher: Arc<Refresher>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (hup, usr1, usr2) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        );
        let (Ok(mut hup), Ok(mut usr1), Ok(mut usr2)) = (hup, usr1, usr2) else {
            tracing::warn!("cannot handle SIGHUP/SIGUSR1/SIGUSR2; they would stop the relay");
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        tracing::info!(signal = "SIGHUP", "signal received: refreshing");
                        let r = refresher.clone();
                        // Off the signal loop: a slow refresh must not delay the next signal.
                        tokio::spawn(async move { r.refresh_forced().await });
                    }
                    _ = usr1.recv() => tracing::info!(signal = "SIGUSR1", "signal received and ignored"),
                    _ = usr2.recv() => tracing::info!(signal = "SIGUSR2", "signal received and ignored"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = refresher;
}
