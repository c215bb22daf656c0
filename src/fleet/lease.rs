//! Leader election: a lease key holding the leader's id with a time to live. The holder renews
//! it every third of its life; anyone else takes it once it has expired. So a dead leader is
//! replaced within one lease period plus one renewal interval (under two lease periods).

use std::time::Duration;

use redis::Script;

use super::publish::Keys;
use super::redis::Redis;

/// Take the lease when free, extend it when ours. Returns 1 when we hold it afterwards.
const ACQUIRE: &str = r"
local h = redis.call('GET', KEYS[1])
if h == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not h then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Give the lease up, only if it is ours (a successor may hold it already).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Try to hold the lease for `ttl`. `Ok(true)`: this replica leads.
pub(crate) async fn acquire(
    redis: &Redis,
    keys: &Keys,
    me: &str,
    ttl: Duration,
) -> Result<bool, String> {
    let script = Script::new(ACQUIRE);
    let held: i64 = redis
        .run(|mut c| async move {
            script
                .key(&keys.lease)
                .arg(me)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut c)
                .await
        })
        .await?;
    Ok(held == 1)
}

/// Hand the lease over at shutdown, so the next leader need not wait for it to expire.
pub(crate) async fn release(redis: &Redis, keys: &Keys, me: &str) -> Result<(), String> {
    let script = Script::new(RELEASE);
    let _: i64 = redis
        .run(|mut c| async move { script.key(&keys.lease).arg(me).invoke_async(&mut c).await })
        .await?;
    Ok(())
}
