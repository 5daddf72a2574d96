"""Dynamic-secret leases: one shared lease per upstream path, renewed and replaced on time.

Each lease is renewed at ``renew_fraction`` (about two thirds) of its remaining TTL. When a
renewal grants less than asked, the lease has hit its max TTL and cannot be extended; that max
TTL is remembered for the path, so later leases know their end from the start. A lease is
replaced ``replace_fraction`` of its max TTL (and at least ``min_remaining`` seconds) before
its end: new credentials are issued and handed to every subscriber's callback; the old lease
expires on its own upstream. A lease whose last subscriber (on any server) unsubscribes is
revoked. A lease nobody subscribed to (plain API reads) is kept renewed until its max TTL;
then it is replaced ahead of its end too if it was read again since it was issued (a consumer
polling ``/v1/resolve``, like the volume plugin's re-delivery loop, gets the new credentials
on its next read while the old ones still work), and otherwise dropped at expiry.

Reads never get a lease with less than ``min_remaining`` seconds of known life (half its life
for a max TTL under twice that): such a read issues the replacement itself (single flight).
A read also looks the lease up upstream at most every ``verify_interval`` seconds; a lease the
upstream no longer knows (``bao lease revoke``, "lease not found" on renewal) is dropped at
once and the read gets a new one.

Several servers on one storage coordinate through ``LeaseSync`` (``lease_sync.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vaultside.broker.lease_store import Lease as Lease
from vaultside.broker.lease_sync import LEASE_EVENTS, LeaseSync
from vaultside.broker.lease_sync import LeaseUpstream as LeaseUpstream
from vaultside.broker.lease_sync import Subscriber as Subscriber
from vaultside.broker.lease_sync import Subscription as Subscription
from vaultside.broker.vault import UpstreamForbiddenError
from vaultside.cluster import leaders
from vaultside.errors import (
    ConflictError,
    NotFoundError,
    UpstreamError,
    UpstreamUnavailableError,
    VaultsideError,
)
from vaultside.retry import Backoff, jitter

log = logging.getLogger(__name__)


class LeaseManager(LeaseSync):
    """Holds, renews, replaces, persists and revokes the leases of one broker."""

    async def acquire(self, key: str) -> Lease:
        """The current lease for ``key``: held, stored by another server, or issued once."""
        await self._ensure_started()
        lease = self.current(key)
        if lease is not None and self.servable(lease) and await self._verified(lease):
            await self._mark_read(key, lease)
            return lease
        return await self._obtain(key)

    async def _verified(self, lease: Lease) -> bool:
        """False if the upstream no longer knows ``lease`` (it is then dropped everywhere)."""
        if self._verify_interval < 0:
            return True
        now = self._clock.monotonic()
        if now - self._verified_at.get(lease.lease_id, -self._verify_interval) < (
            self._verify_interval
        ):
            return True
        task = self._checks.get(lease.lease_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._check(lease))
            self._checks[lease.lease_id] = task
        return await asyncio.shield(task)

    def _looked_up(self, lease_id: str) -> None:
        if len(self._verified_at) > 2 * len(self._leases) + 16:
            held = {lease.lease_id for lease in self._leases.values()}
            self._verified_at = {k: v for k, v in self._verified_at.items() if k in held}
        self._verified_at[lease_id] = self._clock.monotonic()

    async def _check(self, lease: Lease) -> bool:
        try:
            left = await self._upstream.lookup(lease.lease_id)
        except UpstreamForbiddenError as exc:
            # SECURITY: only the capability is named, never the token.
            log.warning(
                "broker_lease_lookup_forbidden",
                extra={"broker": self._broker, "error": exc.message,
                       "needs": "update on sys/leases/lookup"},
            )  # fmt: skip
            self._verify_interval = -1.0  # the policy lacks it: rely on renewal failures
            return True
        except VaultsideError:
            return True  # upstream away: the held credentials may well still work
        finally:
            self._checks.pop(lease.lease_id, None)
        if left is not None and left > 0:
            self._looked_up(lease.lease_id)
            return True
        log.warning("broker_lease_lost", extra={"broker": self._broker, "error": "gone upstream"})
        LEASE_EVENTS.labels(self._broker, "lost").inc()
        self._verified_at.pop(lease.lease_id, None)
        held = self._leases.get(lease.key)
        if held is not None and held.lease_id == lease.lease_id:
            self._forget(lease.key)
            self._dropped.add(lease.key)  # its subscribers get the next lease
        stored, rev = await self._store.read(lease.key)
        if stored is not None and stored.lease_id == lease.lease_id:
            with contextlib.suppress(ConflictError):
                await self._store.delete(lease.key, rev)
        return False

    async def _obtain(self, key: str) -> Lease:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._obtain_once(key))
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _obtain_once(self, key: str) -> Lease:
        # A held lease that lapsed unreplaced (e.g. while the renewal leader changed): its
        # subscribers are told once, here, about whatever replaces it.
        held = self._leases.pop(key, None)
        try:
            stored, rev = await self._store.read(key)
            if stored is not None and stored.max_ttl:
                self._learned_max[key] = stored.max_ttl
            if stored is not None and self.servable(stored) and await self._verified(stored):
                await self._adopt(stored, rev)
                got = stored
            else:
                got = await self._issue(key, rev, (stored.generation + 1) if stored else 1)
                dropped = key in self._dropped
                self._dropped.discard(key)
                if dropped or (stored is not None and stored.lease_id != got.lease_id):
                    LEASE_EVENTS.labels(self._broker, "replaced").inc()
                    if stored is not None and not dropped:
                        await self._extend_to_end(stored)
                    await self._notify(got)
                    held = None  # its subscribers were just told
        except BaseException:
            if held is not None:
                self._leases.setdefault(key, held)  # so the next attempt still tells them
            raise
        finally:
            self._inflight.pop(key, None)
        if held is not None and got.lease_id != held.lease_id:
            LEASE_EVENTS.labels(self._broker, "replaced").inc()
            await self._notify(got)
        return got

    async def subscribe(self, key: str, callback: Subscriber) -> Subscription:
        """Call ``callback`` with the new lease whenever ``key``'s credentials are replaced."""
        self._next_sub += 1
        sub = Subscription(key, callback, self._next_sub)
        first = not self._subs.get(key)
        self._subs.setdefault(key, {})[sub.id] = sub
        if first:
            await self._put_interest(key)
        lease = self._leases.get(key)
        if lease is not None and (lease.capped or not lease.renewable):
            # Its task may be waiting to let it lapse unreplaced: reschedule a replacement.
            self._start(key)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """End a subscription; the last one leaving on every server revokes the lease."""
        subs = self._subs.get(sub.key, {})
        subs.pop(sub.id, None)
        if subs:
            return
        self._subs.pop(sub.key, None)
        await self._store.drop_interest(sub.key)
        self._read_marked.pop(sub.key, None)
        if (await self._store.interest_elsewhere(sub.key)).subscribed:
            log.info("broker_lease_kept_for_other_servers", extra={"broker": self._broker})
            return
        await self.revoke(sub.key)

    async def revoke(self, key: str) -> None:
        """Revoke ``key``'s lease upstream and forget it."""
        lease = self._leases.pop(key, None)
        self._read_again.discard(key)
        self._revs.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        if lease is None:
            return
        try:
            await self._upstream.revoke(lease.lease_id)
            LEASE_EVENTS.labels(self._broker, "revoked").inc()
        except NotFoundError:
            pass
        except UpstreamUnavailableError as exc:
            # Not renewed any more, so it ends at its TTL upstream anyway.
            log.warning(
                "broker_lease_revoke_failed", extra={"broker": self._broker, "error": exc.message}
            )
        finally:
            stored, rev = await self._store.read(key)
            if stored is not None and stored.lease_id == lease.lease_id:
                with contextlib.suppress(ConflictError):
                    await self._store.delete(key, rev)

    async def load(self) -> int:
        """Take part in coordination and pick up stored leases; returns how many are held."""
        await self._ensure_started()
        return len(self._leases)

    async def close(self) -> None:
        """Stop background work (leases stay valid upstream and persisted for the next start)."""
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await self._sync_loop.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leader:
            self.leader = False
            leaders.mark(self.job, self._store.holder, False)
            try:
                await self._store.unlock()
            except Exception:
                log.warning("broker_lease_leader_unlock_failed", extra={"broker": self._broker})

    # --- the leader's work ----------------------------------------------------------------------

    async def _issue(self, key: str, expect_revision: int | None, generation: int) -> Lease:
        # Life is counted from when the request was sent: under load the answer can come back
        # seconds after the upstream started the lease, and life must never be overstated.
        now = self._clock.now()
        secret = await self._upstream.issue(key)
        if not secret.lease_id or secret.lease_duration <= 0:
            raise UpstreamError(f"broker {self._broker!r}: {key} did not issue a lease")
        lease = Lease(
            key=key,
            lease_id=secret.lease_id or "",
            data=dict(secret.data),
            duration=secret.lease_duration,
            renewable=secret.renewable,
            issued_at=now,
            expires_at=now + secret.lease_duration,
            generation=generation,
            max_ttl=self._learned_max.get(key),
        )
        try:
            rev = await self._store.write(lease, expect_revision)
        except ConflictError:
            # Another server installed a lease first: serve theirs, give ours back.
            with contextlib.suppress(VaultsideError):
                await self._upstream.revoke(lease.lease_id)
            stored, rev = await self._store.read(key)
            if stored is None:
                raise
            await self._adopt(stored, rev)
            return stored
        self._leases[key] = lease
        self._revs[key] = rev
        self._read_again.discard(key)
        self._looked_up(lease.lease_id)
        LEASE_EVENTS.labels(self._broker, "issued").inc()
        self._start(key)
        return lease

    def _start(self, key: str) -> None:
        old = self._tasks.pop(key, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        if self.leader and not self._closed:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._maintain(key))

    async def _maintain(self, key: str) -> None:
        retrying = False
        # Jittered renewals and full-jitter retries (vaultside.retry): leases issued together,
        # or failing together while the upstream is away, are not renewed in lockstep.
        backoff = Backoff(base=self._retry / 4, cap=self._retry)
        while True:
            lease = self._leases.get(key)
            if lease is None:
                return
            final = lease.capped or not lease.renewable  # cannot be extended any more
            replace_at = self.replace_at(lease)
            # Renewal at ``renew_fraction`` of each granted TTL (fixed, not moved by wake-ups).
            renew_at = self.renew_time(lease)
            if not retrying:
                backoff.reset()
                now = self._clock.now()
                wake = renew_at
                if replace_at is not None:
                    if final:
                        wake = replace_at
                    elif replace_at > now:
                        wake = min(wake, replace_at)
                    else:  # due, but nobody read it again yet: keep renewing, look again
                        wake = min(wake, now + self._lock_ttl / 3)
                # Up to 10% early (never late): leases issued together renew apart.
                await self._clock.sleep(jitter(max(0.0, wake - now), 0.1))
            was_retrying, retrying = retrying, False
            if self._leases.get(key) is not lease or not await self._still_leader():
                return
            try:
                now = self._clock.now()
                final = lease.capped or not lease.renewable
                replace_at = self.replace_at(lease)
                renew_at = self.renew_time(lease)
                due = replace_at is not None and now >= replace_at - 0.01
                if due and (final or await self._wanted(lease)):
                    await self._replace_or_drop(lease)
                    return
                early = 0.1 * self._fraction * lease.duration  # the jitter's reach
                if final or (not was_retrying and now < renew_at - early - 0.01):
                    continue
                await self._renew(lease)
            except asyncio.CancelledError:
                raise
            except UpstreamUnavailableError as exc:
                retrying = await self._retry_later(lease, exc, backoff)
                if not retrying:
                    return
            except VaultsideError as exc:
                # The lease is gone upstream (revoked, unknown): replace it or drop it.
                log.warning(
                    "broker_lease_lost", extra={"broker": self._broker, "error": exc.message}
                )
                LEASE_EVENTS.labels(self._broker, "lost").inc()
                lease.capped = True
                lease.expires_at = self._clock.now()
                await self._replace_or_drop(lease)
                return

    async def _renew(self, lease: Lease) -> None:
        now = self._clock.now()  # before the request, as in _issue: never overstate life
        granted, renewable = await self._upstream.renew(lease.lease_id, lease.duration)
        lease.expires_at = now + granted
        lease.renewable = renewable
        if granted < lease.duration - 1:
            lease.capped = True  # the upstream capped us at the max TTL
            lease.max_ttl = lease.expires_at - lease.issued_at
            self._learned_max[lease.key] = lease.max_ttl
        try:
            self._revs[lease.key] = await self._store.write(lease, self._revs.get(lease.key))
        except ConflictError:
            stored, rev = await self._store.read(lease.key)
            if stored is not None:
                await self._adopt(stored, rev)
            return
        LEASE_EVENTS.labels(self._broker, "renewed").inc()

    async def _retry_later(
        self, lease: Lease, exc: UpstreamUnavailableError, backoff: Backoff
    ) -> bool:
        """Wait before the next renewal attempt; False once the lease expired (task ends)."""
        left = lease.expires_at - self._clock.now()
        log.warning(
            "broker_lease_renewal_failed", extra={"broker": self._broker, "error": exc.message}
        )
        if left <= 0:
            # Expired while the upstream was away: subscribers get new credentials as soon
            # as it is back; without subscribers the next acquire issues a new lease.
            LEASE_EVENTS.labels(self._broker, "expired").inc()
            lease.capped = True
            await self._replace_or_drop(lease)
            return False
        await self._clock.sleep(min(backoff.next(), left / 2))
        return True

    async def _wanted(self, lease: Lease) -> bool:
        """Subscribed or read again on this server, or on any other (interest records)."""
        if self._subs.get(lease.key) or lease.key in self._read_again:
            return True
        interest = await self._store.interest_elsewhere(lease.key)
        return interest.subscribed or lease.lease_id in interest.read

    async def _replace_or_drop(self, lease: Lease) -> None:
        key = lease.key
        while not await self._wanted(lease):
            # Nobody to hand new credentials to yet: look again until it expires, then forget.
            left = lease.expires_at - self._clock.now()
            if left <= 0:
                if self._leases.get(key) is lease and await self._still_leader():
                    self._leases.pop(key, None)
                    with contextlib.suppress(ConflictError):
                        await self._store.delete(key, self._revs.pop(key, None))
                    LEASE_EVENTS.labels(self._broker, "expired").inc()
                return
            await self._clock.sleep(min(left, self._lock_ttl / 3))
            if self._leases.get(key) is not lease:
                return
        backoff = Backoff(base=self._retry / 4, cap=self._retry)
        while True:
            if not await self._still_leader():
                return
            try:
                new = await self._issue(key, self._revs.get(key), lease.generation + 1)
                break
            except ConflictError:
                self._forget(key)  # revoked on another server meanwhile: nobody wants it
                return
            except UpstreamUnavailableError as exc:
                left = lease.expires_at - self._clock.now()
                log.warning(
                    "broker_lease_replace_failed",
                    extra={"broker": self._broker, "error": exc.message},
                )
                delay = backoff.next()
                await self._clock.sleep(min(delay, left / 2) if left > 1 else delay)
        if new.lease_id == lease.lease_id or self._leases.get(key) is not new:
            return  # another server's lease was adopted (and its subscribers told) instead
        LEASE_EVENTS.labels(self._broker, "replaced").inc()
        await self._extend_to_end(lease)
        await self._notify(new)

    async def _extend_to_end(self, old: Lease) -> None:
        """Renew a replaced lease once, up to its known end: whoever read it was promised that
        much life (``remaining_life``), and nobody renews it after its replacement."""
        end = self.end_of(old)
        now = self._clock.now()
        if end is None or old.capped or not old.renewable or min(end, old.expires_at) <= now:
            return
        try:
            await self._upstream.renew(old.lease_id, end - now)
        except VaultsideError as exc:
            log.warning(
                "broker_lease_extend_failed", extra={"broker": self._broker, "error": exc.message}
            )
