// SPDX-License-Identifier: MIT
/*
 * supervisor_reload.c - a reload, all or nothing across the lanes (issue 16;
 * with one lane, the reload of docs/reload.md): a candidate per lane loads
 * and inits (V); then every old worker saves and pauses (S, P), every
 * candidate runs on_reload (L, Y); then the rules swap once and every old
 * worker hands over (H). Until the swap any failure anywhere kills every
 * candidate and resumes every old worker; one outcome is reported.
 * core/supervisor.c calls these from its event loop.
 */
#include "supervisor_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reload.h"
#include "rules_swap.h"

/**
 * ld_sup_reload_done() - report a reload's one outcome, whatever the number
 * of lanes: the log, the status file, every lane's reloads/reload_errors
 * @s: supervisor
 * @ok: it succeeded
 * @why: on failure, the reason ("!" + a whole message, or what follows
 *       "POLICY has errors, not reloading: ")
 */
void ld_sup_reload_done(struct super *s, int ok, const char *why)
{
	char msg[PATH_MAX + LD_SHARED_ERR_MAX + LD_RULES_FILTER_MAX + 1400];

	if (ok)
		snprintf(msg, sizeof(msg), "reloaded %s (fnv64 %016" PRIx64 ") in %.2f ms%s%s",
			 s->cfg->w.policy, s->reload_hash,
			 (double)(ld_now_ns() - s->reload_t0_ns) / 1e6,
			 s->nlanes > 1 ? " in every worker" : "", s->reload_note);
	else if (why && why[0] == '!')   /* a whole message */
		snprintf(msg, sizeof(msg), "%s", why + 1);
	else
		snprintf(msg, sizeof(msg), "%s has errors, not reloading: %s", s->cfg->w.policy, why);
	ld_reload_report(&s->reload, ok, msg, &s->lanes[0].sh->c);
	for (unsigned i = 1; i < s->nlanes; i++) {   /* each queue's counters say it too */
		if (ok)
			s->lanes[i].sh->c.reloads++;
		else
			s->lanes[i].sh->c.reload_errors++;
	}
	s->reload_note[0] = '\0';
	s->reloading = 0;
	s->reload_committed = 0;
}

/**
 * ld_sup_abort_reload() - a reload fails before the rules swap: every
 * candidate is killed and every old worker that saved or paused goes on
 * serving (R); nothing if no reload runs
 * @s: supervisor
 * @why: as for ld_sup_reload_done()
 */
void ld_sup_abort_reload(struct super *s, const char *why)
{
	if (!s->reloading)
		return;
	free(s->next_set);
	s->next_set = NULL;
	LANES(s, l) {
		ld_sup_kill(&l->nxt, K_ABORT);
		if (l->cur.state == W_SAVING || l->cur.state == W_PAUSED) {
			l->cur.state = W_SERVING;
			l->cur.deadline_ns = 0;
			ld_sup_tell(&l->cur, LD_CTL_RESUME);
		}
	}
	ld_sup_reload_done(s, 0, why);
}

/**
 * ld_sup_start_reload() - SIGHUP, `luadivert reload`, --watch: check the
 * policy file, then start a candidate in every lane
 * @s: supervisor; every lane's worker serves and no reload runs
 */
void ld_sup_start_reload(struct super *s)
{
	char err[LD_SHARED_ERR_MAX];

	ld_reload_begin(&s->reload);
	s->reloading = 1;
	s->reload_committed = 0;
	s->reload_t0_ns = ld_now_ns();
	if (ld_file_hash(s->cfg->w.policy, &s->reload_hash) < 0) {
		ld_sup_reload_done(s, 0, strerror(errno));
		return;
	}
	if (ld_sup_check_policy(s, err, sizeof(err)) < 0) {
		ld_sup_reload_done(s, 0, err);
		return;
	}
	LANES(s, l) {
		if (ld_sup_spawn(s, l, &l->nxt, 1, s->cfg->reload_timeout_ms) < 0) {
			ld_sup_abort_reload(s, "could not start a worker for it");
			return;
		}
	}
}

/**
 * ld_sup_reload_maybe_done() - after the swap, report success once no lane
 * has a candidate left (each handed over, or died and its lane restarts)
 * @s: supervisor
 */
void ld_sup_reload_maybe_done(struct super *s)
{
	if (s->reloading && s->reload_committed && !ld_lanes_any_nxt(s)) {
		ld_reload_watch_list(&s->reload, s->lanes[0].sh->modules);   /* issue 14 */
		ld_sup_reload_done(s, 1, NULL);
	}
}

/*
 * Issue 18 across processes: the new workers wrote the rules their policy
 * declares into the shared region before V (the same policy in every
 * lane: lane 0's is read); compile them now, before anything changes. A
 * filter that does not compile refuses the reload.
 */
static int plan_reload_rules(struct super *s)
{
	char err[LD_RULES_FILTER_MAX + 1200];

	free(s->next_set);
	s->next_set = NULL;
	if (!s->rules_on)
		return 0;   /* --no-rules */
	if (ld_divert_plan(&s->divert, &s->lanes[0].sh->decl, &s->next_set, err, sizeof(err)) < 0) {
		ld_sup_abort_reload(s, err);
		return -1;
	}
	return 0;
}

/*
 * Every new worker is ready and every old one paused (they read no packet):
 * swap the rules now, all or nothing, just before the code. Packets the
 * old rules queued and nobody read yet are judged by the new code
 * (docs/reload.md). A failed swap refuses the reload: the old ones resume.
 */
static int swap_reload_rules(struct super *s)
{
	char err[LD_RULES_FILTER_MAX + 1200], what[LD_RULES_FILTER_MAX + 128];
	char msg[PATH_MAX + LD_RULES_FILTER_MAX + 1400];
	int changed = 0;

	if (!s->next_set)
		return 0;
	if (ld_divert_swap(&s->divert, s->next_set, &changed, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "!%s: not reloading, the divert rules could not be "
			 "swapped (the old policy and rules stay): %s", s->cfg->w.policy, err);
		ld_sup_abort_reload(s, msg);   /* frees next_set */
		return -1;
	}
	s->next_set = NULL;   /* owned by s->divert now */
	LANES(s, l)   /* issue 16: the new rules' offload generation */
		l->sh->offload_gen = s->divert.cur->cfg.offload_gen;
	if (changed)
		snprintf(s->reload_note, sizeof(s->reload_note), "; now diverting %s",
			 ld_rules_set_describe(s->divert.cur, what, sizeof(what)));
	return 0;
}

/**
 * ld_sup_all_valid() - a candidate said V: once every lane's did and every
 * old worker serves, plan the rules and tell every old worker to save (S)
 * @s: supervisor
 */
void ld_sup_all_valid(struct super *s)
{
	if (!ld_lanes_all(s, 1, W_VALID) || !ld_lanes_all(s, 0, W_SERVING))
		return;
	if (plan_reload_rules(s) < 0)
		return;
	LANES(s, l) {
		l->cur.state = W_SAVING;
		l->cur.deadline_ns = l->nxt.deadline_ns;
		ld_sup_tell_serving(l, &l->cur, LD_CTL_SAVE);
	}
}

/**
 * ld_sup_all_ready() - a candidate said Y: once every lane's did, swap the
 * rules (no way back after this) and tell every old worker to hand over (H)
 * @s: supervisor
 */
void ld_sup_all_ready(struct super *s)
{
	if (!ld_lanes_all(s, 1, W_READY))
		return;
	if (swap_reload_rules(s) < 0)
		return;
	s->reload_committed = 1;
	LANES(s, l) {
		l->cur.state = W_LEAVING;
		l->cur.deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
		ld_sup_tell(&l->cur, LD_CTL_HANDOVER);
	}
}
