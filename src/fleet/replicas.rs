//! Live replicas and the version each serves: a heartbeat writes both, with Redis's own clock
//! deciding when a replica that stopped beating is no longer live (no clock skew between pods).
//!
//! `{prefix}alive` is a sorted set of replica ids scored by when they expire (ms, Redis time);
//! `{prefix}serving` maps each id to the version it serves.

use std::time::Duration;

use redis::Script;

use super::publish::Keys;
use super::redis::Redis;

const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], d)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
";

const LIVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  table.insert(out, id)
  table.insert(out, redis.call('HGET', KEYS[2], id) or '0')
end
return out
";

const LEAVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
";

/// Say "`me` is live and serves `version`" for `ttl`.
pub(crate) async fn heartbeat(
    redis: &Redis,
    keys: &Keys,
    me: &str,
    version: u64,
    ttl: Duration,
) -> Result<(), String> {
    let args = [
        me.to_owned(),
        version.to_string(),
        ttl.as_millis().to_string(),
    ];
    let _: i64 = on_replicas(redis, keys, HEARTBEAT, &args).await?;
    Ok(())
}

/// Every live replica and the version it serves, sorted by id.
pub(crate) async fn live(redis: &Redis, keys: &Keys) -> Result<Vec<(String, u64)>, String> {
    let flat: Vec<String> = on_replicas(redis, keys, LIVE, &[]).await?;
    let mut out: Vec<(String, u64)> = flat
        .chunks(2)
        .filter_map(|p| match p {
            [id, v] => Some((id.clone(), v.parse().unwrap_or(0))),
            _ => None,
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Leave the fleet at shutdown, so an admin refresh does not wait for a replica that is gone.
pub(crate) async fn leave(redis: &Redis, keys: &Keys, me: &str) -> Result<(), String> {
    let _: i64 = on_replicas(redis, keys, LEAVE, &[me.to_owned()]).await?;
    Ok(())
}

/// Run one of the scripts above with `KEYS[1]` the alive set, `KEYS[2]` the serving map and
/// `args` as `ARGV` (Redis receives every argument as a string either way).
async fn on_replicas<T: redis::FromRedisValue>(
    redis: &Redis,
    keys: &Keys,
    source: &str,
    args: &[String],
) -> Result<T, String> {
    let script = Script::new(source);
    redis
        .run(|mut c| async move {
            let mut call = script.prepare_invoke();
            call.key(&keys.alive).key(&keys.serving);
            for a in args {
                call.arg(a);
            }
            call.invoke_async(&mut c).await
        })
        .await
}
