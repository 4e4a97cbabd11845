/* SPDX-License-Identifier: MIT */
/*
 * supervisor_priv.h - what core/supervisor.c (the event loop and the
 * workers' states) and core/supervisor_start.c (start-up and the end)
 * share. Not an interface for anything else.
 */
#ifndef LD_SUPERVISOR_PRIV_H
#define LD_SUPERVISOR_PRIV_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "nfq.h"
#include "observe.h"
#include "policy_rules.h"
#include "reload.h"
#include "shared_state.h"
#include "supervisor.h"

enum { TICK_MS = 20, MS = 1000000 };

enum wstate {
	W_NONE,      /* no process */
	W_LOADING,   /* forked: loading the policy and running init, until V */
	W_STATE,     /* L sent: running on_reload, until Y */
	W_READY,     /* validated (and on_reload done): waits for G */
	W_SERVING,   /* G sent: it owns the queue */
	W_SAVING,    /* S sent: save(), until P */
	W_PAUSED,    /* saved; waits for R or H */
	W_LEAVING,   /* H sent: exits, leaving held packets to the successor */
	W_STOPPING,  /* Q sent: releases held packets, on_stop, exits */
	W_VALID,     /* a reload candidate said V: waits until every lane's did */
};

enum why_killed {
	K_NONE,
	K_HANG,      /* a batch past --handler-timeout */
	K_DEADLINE,  /* no answer in time (init, save, on_reload, handover) */
	K_STOP,      /* past --stop-timeout */
	K_ABORT,     /* not needed any more (a candidate, a worker still loading) */
};

struct wproc {
	pid_t pid;
	int ctl;
	enum wstate state;
	uint64_t deadline_ns;   /* for the reply the state waits for; 0 = none */
	enum why_killed killed;
	int with_policy;
};

/*
 * Issue 16: one lane per queue (--workers N: queues Q..Q+N-1). A lane is
 * what one queue needs, nothing shared with the other lanes on the packet
 * path: its socket, its shared region, its serving worker and its reload
 * candidate, its restart budget. N = 1 is one lane: luadivert as before.
 */
struct lane {
	unsigned idx;                     /* 0..nlanes-1 */
	uint16_t queue;                   /* cfg queue + idx */
	int cpu;                          /* the CPU its workers are pinned to; -1: none */
	struct ld_worker_cfg wcfg;        /* cfg->w with this lane's queue and obs part */
	struct ld_shared *sh;
	struct ld_nfq nfq;
	struct ld_log_limit lim;
	struct wproc cur, nxt;
	uint64_t *restarts;               /* ring of restart times, max_restarts long */
	uint32_t nrestarts;
	int fallback;                     /* the policy was given up on in this lane */
	int lock_fd;
	struct ld_metric_tables *tables;  /* lanes past the first: their policy metrics */
	struct ld_counters usr1_prev;     /* SIGUSR1 rates (issue 14 item 22) */
	struct ld_kernel_counters usr1_kprev;
};

struct super {
	const struct ld_super_cfg *cfg;
	struct ld_divert divert;          /* issue 18: the installed rules */
	struct ld_rules_set *next_set;    /* a reload's compiled rules, swapped at READY */
	char reload_note[LD_RULES_FILTER_MAX + 160];   /* "; now diverting ..." */
	struct ld_obs *obs;               /* issue 13: /metrics, --record's files, --report */
	struct ld_metric_tables *tables;  /* the policy metrics, mapped shared with workers */
	char metrics_file[PATH_MAX + 8];  /* pidfile.metrics, for `luadivert stats` */
	uint64_t usr1_at;
	struct lane *lanes;               /* nlanes of them; lanes[0] is queue cfg->w.nfq.queue */
	unsigned nlanes;
	struct ld_reload reload;
	int reloading;                    /* candidates run in every lane */
	int reload_committed;             /* rules swapped, H sent: no way back */
	int sigfd, tickfd, epfd;
	int started;              /* the first workers took the queues */
	int rules_on;
	int stopping;
	int stop_killed;
	int failed;               /* exit 1 */
	uint64_t stop_deadline_ns;
	uint64_t reload_t0_ns, reload_hash;
	char status[PATH_MAX + 8];
};

/* Every lane: for (struct lane *l = s->lanes; l < s->lanes + s->nlanes; l++) */
#define LANES(s, l) for (struct lane *l = (s)->lanes; l < (s)->lanes + (s)->nlanes; l++)

/* supervisor.c */
void ld_sup_tell(struct wproc *w, char m);
void ld_sup_tell_serving(struct lane *l, struct wproc *w, char m);
int ld_sup_check_policy(const struct super *s, char *err, size_t errlen);
int ld_sup_spawn(struct super *s, struct lane *l, struct wproc *w, int with_policy,
		 uint32_t deadline_ms);
void ld_sup_kill(struct wproc *w, enum why_killed why);
void ld_sup_begin_stop(struct super *s);
int ld_sup_loop(struct super *s);

/* supervisor_reload.c */
void ld_sup_reload_done(struct super *s, int ok, const char *why);
void ld_sup_abort_reload(struct super *s, const char *why);
void ld_sup_start_reload(struct super *s);
void ld_sup_reload_maybe_done(struct super *s);
void ld_sup_all_valid(struct super *s);
void ld_sup_all_ready(struct super *s);

/* supervisor_start.c */
int ld_sup_go_live(struct super *s);

/* supervisor_lanes.c */
int ld_lanes_new(struct super *s, char *err, size_t errlen);
void ld_lanes_free(struct super *s);
void ld_lane_pin(const struct lane *l);
int ld_lanes_all(const struct super *s, int nxt, enum wstate st);
int ld_lanes_any_nxt(const struct super *s);
struct lane *ld_lane_of_pid(struct super *s, pid_t pid, struct wproc **w);
void ld_lanes_print_total(const struct super *s, int with_kernel);

#endif /* LD_SUPERVISOR_PRIV_H */
