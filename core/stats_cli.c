// SPDX-License-Identifier: MIT
/*
 * stats_cli.c - `luadivert stats`: a live view of a running instance, read
 * from its /metrics endpoint (--metrics ADDR, or the address the instance
 * wrote next to its pid file). Two scrapes an interval apart give the rates.
 * On a terminal --watch redraws in place like top; piped, it prints plain
 * blocks of text, one per interval.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pidfile.h"
#include "commands.h"
#include "log.h"
#include "metrics_http.h"
#include "metrics_render.h"

enum { ST_SAMPLES_MAX = 8192, ST_KEY_MAX = 256, ST_TIMEOUT_S = 3 };

static const char stats_usage[] =
	"usage: luadivert stats [--queue N] [--metrics ADDR] [--pidfile FILE] [--watch]\n"
	"                       [--interval SECONDS] [--count N]\n"
	"\n"
	"Show what a running luadivert does, with rates per second: packets received,\n"
	"verdicts, held packets, errors, kernel drops, each named pipe and the policy's\n"
	"own metrics. Reads the instance's metrics endpoint: --metrics ADDR, or the\n"
	"address `luadivert run --metrics` wrote next to the pid file of --queue N\n"
	"(default queue 0). --watch refreshes every --interval (default 1 s) until\n"
	"Ctrl-C or --count views; on a terminal it redraws in place, piped it prints\n"
	"one plain block per view.\n";

struct st_sample {
	char key[ST_KEY_MAX];   /* name{labels} as served */
	double v;
};

struct st_scrape {
	struct st_sample *s;
	size_t n;
	double t;               /* seconds, CLOCK_MONOTONIC */
};

static volatile sig_atomic_t st_stop;

static void st_on_signal(int sig)
{
	(void)sig;
	st_stop = 1;
}

static double st_now(void)
{
	return (double)ld_now_ns() / 1e9;
}

/* GET /metrics into @b (the body only). */
static int st_fetch(const char *addr, struct ld_buf *b, char *err, size_t errlen)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\nUser-Agent: luadivert-stats\r\n\r\n";
	struct timeval tv = { ST_TIMEOUT_S, 0 };
	char chunk[65536], *body;
	int fd = ld_metrics_connect(addr, err, errlen);
	ssize_t n;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	b->len = 0;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
		snprintf(err, errlen, "%s: send: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		ld_buf_printf(b, "%.*s", (int)n, chunk);
	close(fd);
	if (n < 0 || b->failed || !b->p) {
		snprintf(err, errlen, "%s: %s", addr, n < 0 ? strerror(errno) : "empty answer");
		return -1;
	}
	if (strncmp(b->p, "HTTP/1.", 7) != 0 || strncmp(b->p + 9, "200", 3) != 0) {
		snprintf(err, errlen, "%s: not a metrics endpoint (%.40s)", addr, b->p);
		return -1;
	}
	body = strstr(b->p, "\r\n\r\n");
	if (!body) {
		snprintf(err, errlen, "%s: truncated answer", addr);
		return -1;
	}
	body += 4;
	memmove(b->p, body, strlen(body) + 1);
	b->len = strlen(b->p);
	return 0;
}

/* The text format's sample lines into @sc. */
static void st_parse(char *text, struct st_scrape *sc)
{
	sc->n = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *sp;

		if (line[0] == '#' || !(sp = strrchr(line, ' ')) || sc->n == ST_SAMPLES_MAX)
			continue;
		if ((size_t)(sp - line) >= ST_KEY_MAX)
			continue;
		snprintf(sc->s[sc->n].key, ST_KEY_MAX, "%.*s", (int)(sp - line), line);
		sc->s[sc->n].v = strtod(sp + 1, NULL);
		sc->n++;
	}
}

static int st_get(const struct st_scrape *sc, const char *key, double *v)
{
	for (size_t i = 0; i < sc->n; i++)
		if (strcmp(sc->s[i].key, key) == 0) {
			*v = sc->s[i].v;
			return 0;
		}
	return -1;
}

/* One row: total and rate of a counter, or the value of a gauge. */
static void st_row(FILE *f, const struct st_scrape *a, const struct st_scrape *b,
		   const char *label, const char *key, int gauge)
{
	double v1, v0 = 0, dt = b->t - a->t;

	if (st_get(b, key, &v1) < 0)
		return;
	if (gauge) {
		fprintf(f, "  %-28s %14.0f\n", label, v1);
		return;
	}
	if (st_get(a, key, &v0) < 0 || v1 < v0)
		v0 = v1;
	fprintf(f, "  %-28s %14.0f %12.1f/s\n", label, v1, dt > 0 ? (v1 - v0) / dt : 0.0);
}

/* The queue label values present, in order. */
static size_t st_queues(const struct st_scrape *sc, unsigned *q, size_t max)
{
	static const char pfx[] = "luadivert_packets_received_total{queue=\"";
	size_t n = 0;

	for (size_t i = 0; i < sc->n && n < max; i++)
		if (strncmp(sc->s[i].key, pfx, sizeof(pfx) - 1) == 0)
			q[n++] = (unsigned)strtoul(sc->s[i].key + sizeof(pfx) - 1, NULL, 10);
	return n;
}

static void st_show(FILE *f, const char *addr, const struct st_scrape *a,
		    const struct st_scrape *b, int only_queue, int tty)
{
	unsigned qs[64];
	size_t nq = st_queues(b, qs, 64);
	time_t now = time(NULL);
	char when[32], key[ST_KEY_MAX];

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	if (tty)
		fputs("\033[H\033[2J", f);
	fprintf(f, "luadivert stats  %s  %s  (rates over %.1f s)\n", addr, when, b->t - a->t);
	for (size_t i = 0; i < nq; i++) {
		unsigned q = qs[i];

		if (only_queue >= 0 && (unsigned)only_queue != q)
			continue;
		fprintf(f, "queue %u %27s %14s %14s\n", q, "", "total", "rate");
#define ROW(label, fmt, gauge) \
	do { snprintf(key, sizeof(key), fmt, q); st_row(f, a, b, label, key, gauge); } while (0)
		ROW("received", "luadivert_packets_received_total{queue=\"%u\"}", 0);
		ROW("bytes received", "luadivert_bytes_received_total{queue=\"%u\"}", 0);
		for (int k = 0; k < LD_VERDICT_KINDS; k++) {
			char lab[32];

			snprintf(lab, sizeof(lab), "verdict %s", ld_verdict_kind_names[k]);
			snprintf(key, sizeof(key), "luadivert_verdicts_total{queue=\"%u\",verdict=\"%s\"}",
				 q, ld_verdict_kind_names[k]);
			st_row(f, a, b, lab, key, 0);
		}
		ROW("modified", "luadivert_packets_modified_total{queue=\"%u\"}", 0);
		ROW("held", "luadivert_packets_held_total{queue=\"%u\"}", 0);
		ROW("held now", "luadivert_held_packets{queue=\"%u\"}", 1);
		ROW("hold overflow", "luadivert_hold_overflow_total{queue=\"%u\"}", 0);
		ROW("handler errors", "luadivert_handler_errors_total{queue=\"%u\"}", 0);
		ROW("kernel queue dropped", "luadivert_kernel_queue_dropped_total{queue=\"%u\"}", 0);
		ROW("kernel user dropped", "luadivert_kernel_user_dropped_total{queue=\"%u\"}", 0);
		ROW("record dropped", "luadivert_record_dropped_total{queue=\"%u\"}", 0);
#undef ROW
	}
	/* pipes and the policy's metrics: every other counter/gauge, as served */
	for (size_t i = 0; i < b->n; i++) {
		const char *k = b->s[i].key;

		if (strncmp(k, "luadivert_pipe_", 15) == 0 && !strstr(k, "_bucket{") &&
		    !strstr(k, "_sum{"))
			st_row(f, a, b, k + 15, k, strstr(k, "queue_length{") != NULL);
	}
	for (size_t i = 0; i < b->n; i++) {
		const char *k = b->s[i].key;

		if (strncmp(k, "luadivert_", 10) != 0)
			st_row(f, a, b, k, k, !strstr(k, "_total"));
	}
	fflush(f);
}

/* The endpoint of the instance on @queue, from the file `run --metrics` wrote. */
static int st_find_addr(const char *pidfile, char *addr, size_t len)
{
	char path[PATH_MAX + 16];
	FILE *f;

	snprintf(path, sizeof(path), "%s.metrics", pidfile);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(addr, (int)len, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	addr[strcspn(addr, "\r\n")] = 0;
	return addr[0] ? 0 : -1;
}

int ld_cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char addr[512] = "", pidfile[PATH_MAX] = "", err[512];
	const char *given = NULL;
	int opt, watch = 0, queue = -1, tty = isatty(STDOUT_FILENO), rc = LD_EXIT_OK;
	uint32_t v, count = 0;
	double interval = 1.0;
	struct st_scrape sc[2] = { 0 };
	struct ld_buf b = { 0 };
	struct sigaction sa = { .sa_handler = st_on_signal };

	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
	while ((opt = getopt_long(argc, argv, "q:wh", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			if (ld_parse_u32(optarg, 0, 65535, &v) < 0)
				return ld_usage_error("stats", "--queue: '%s' is not 0..65535", optarg);
			queue = (int)v;
			break;
		case 'm':
			given = optarg;
			break;
		case 'p':
			snprintf(pidfile, sizeof(pidfile), "%s", optarg);
			break;
		case 'w':
			watch = 1;
			break;
		case 'i': {
			char *end;

			interval = strtod(optarg, &end);
			if (*end || !(interval >= 0.1 && interval <= 3600))
				return ld_usage_error("stats", "--interval: '%s' is not 0.1..3600 seconds",
						      optarg);
			break;
		}
		case 'c':
			if (ld_parse_u32(optarg, 1, UINT32_MAX, &count) < 0)
				return ld_usage_error("stats", "--count: '%s' is not a positive number", optarg);
			break;
		case 'h':
			fputs(stats_usage, stdout);
			return LD_EXIT_OK;
		default:
			return ld_usage_error("stats", "unknown or incomplete option");
		}
	}
	if (optind != argc)
		return ld_usage_error("stats", "unexpected argument '%s'", argv[optind]);
	if (given) {
		snprintf(addr, sizeof(addr), "%s", given);
	} else {
		if (!pidfile[0])
			ld_default_pidfile(queue < 0 ? 0 : (uint32_t)queue, pidfile, sizeof(pidfile));
		if (st_find_addr(pidfile, addr, sizeof(addr)) < 0) {
			ld_log("stats: no metrics endpoint known for %s: start `luadivert run` with "
			       "--metrics ADDR, or give --metrics ADDR here", pidfile);
			return LD_EXIT_FAIL;
		}
	}
	if (!count)
		count = watch ? UINT32_MAX : 1;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sc[0].s = calloc(ST_SAMPLES_MAX, sizeof(struct st_sample));
	sc[1].s = calloc(ST_SAMPLES_MAX, sizeof(struct st_sample));
	if (!sc[0].s || !sc[1].s) {
		ld_log("stats: out of memory");
		rc = LD_EXIT_FAIL;
		goto out;
	}
	if (st_fetch(addr, &b, err, sizeof(err)) < 0) {
		ld_log("stats: %s", err);
		rc = LD_EXIT_FAIL;
		goto out;
	}
	sc[0].t = st_now();
	st_parse(b.p, &sc[0]);
	for (uint32_t i = 0; i < count && !st_stop; i++) {
		struct timespec ts = { (time_t)interval, (long)((interval - floor(interval)) * 1e9) };
		struct st_scrape tmp;

		nanosleep(&ts, NULL);
		if (st_stop)
			break;
		if (st_fetch(addr, &b, err, sizeof(err)) < 0) {
			ld_log("stats: %s", err);
			rc = LD_EXIT_FAIL;
			break;
		}
		sc[1].t = st_now();
		st_parse(b.p, &sc[1]);
		if (!tty && i)
			fputc('\n', stdout);
		st_show(stdout, addr, &sc[0], &sc[1], queue, tty && watch);
		tmp = sc[0];
		sc[0] = sc[1];
		sc[1] = tmp;
	}
out:
	free(sc[0].s);
	free(sc[1].s);
	ld_buf_free(&b);
	return rc;
}
