//! Configuration text: arbitrary UTF-8 to `config::parse_text` as a YAML and as a JSON file,
//! then what start-up does next with a valid one: build the credentials (`Auth::new`), issue a
//! token for each plain evaluation key, and turn the durations into `Duration`s.
#![no_main]

use flagrelay::config::parse_text;
use flagrelay::http::Auth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for name in ["flagrelay.yaml", "flagrelay.json"] {
        let config = match parse_text(name, &text) {
            Ok(config) => config,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let _ = config.polling_interval.duration();
        let _ = config.server.shutdown_grace_period.duration();
        for r in &config.retrievers {
            let _ = r.timeout.duration();
        }
        let auth = match Auth::new(
            &config.authorized_keys,
            config.auth.jwt_secret.as_ref(),
            config.auth.token_ttl,
        ) {
            Ok(auth) => auth,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        for k in &config.authorized_keys.evaluation {
            let _ = auth.issue_token(k.key.expose());
        }
    }
});
