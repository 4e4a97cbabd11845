// SPDX-License-Identifier: MIT
/*
 * rules_unit.c - unit tests of core/rules*.c that need no root and touch no
 * firewall: option parsing, the filter compiler, reading iptables-save text,
 * the removal script, running programs without a shell, the queue lock.
 * Built with ASan+UBSan (Makefile: build/unit/), run by tests/run.sh.
 * Prints one "ok"/"not ok" line per check; exits 1 if any failed.
 */
#include "../../core/rules.c"
#include "../../core/rules_compile.c"
#include "../../core/rules_save.c"
#include "../../core/rules_exec.c"
#include "../../core/rules_lock.c"

static int failed, total;

static void check(int cond, const char *what)
{
	total++;
	if (!cond)
		failed++;
	printf("%s - %s\n", cond ? "ok" : "not ok", what);
}

static void test_options(void)
{
	unsigned h = 0;
	char buf[64];
	int b = -1;

	check(ld_rules_parse_hook("input", &h) == 0 && h == LD_HOOK_INPUT, "hook: input");
	check(ld_rules_parse_hook("Output, FORWARD", &h) == 0 &&
	      h == (LD_HOOK_INPUT | LD_HOOK_OUTPUT | LD_HOOK_FORWARD), "hook: list, any case, adds up");
	h = 0;
	check(ld_rules_parse_hook("all", &h) == 0 && h == LD_HOOK_ALL, "hook: all");
	h = LD_HOOK_INPUT;
	check(ld_rules_parse_hook("input,bogus", &h) < 0 && h == LD_HOOK_INPUT,
	      "hook: unknown name fails, mask unchanged");
	check(ld_rules_parse_hook("", &h) < 0 && ld_rules_parse_hook("input,", &h) < 0 &&
	      ld_rules_parse_hook(",input", &h) < 0, "hook: empty names fail");
	check(strcmp(ld_rules_hook_names(LD_HOOK_ALL, buf, sizeof buf),
		     "prerouting,input,forward,output,postrouting") == 0, "hook names: all five");
	check(strcmp(ld_rules_hook_names(0, buf, sizeof buf), "") == 0, "hook names: none");
	check(ld_rules_parse_backend("legacy", &b) == 0 && b == LD_BACKEND_LEGACY &&
	      ld_rules_parse_backend("nft", &b) == 0 && b == LD_BACKEND_NFT &&
	      ld_rules_parse_backend("auto", &b) == 0 && b == LD_BACKEND_AUTO &&
	      ld_rules_parse_backend("iptables", &b) < 0, "backend names");
	ld_rules_chain_name(65535, buf, sizeof buf);
	check(strcmp(buf, "LUADIVERT-Q65535") == 0 && strlen(buf) < LD_RULES_CHAIN_MAX,
	      "chain name of the largest queue");
	check(chain_queue("LUADIVERT-Q0", 12) == 0 && chain_queue("LUADIVERT-Q65535", 16) == 65535,
	      "chain_queue: canonical names");
	check(chain_queue("LUADIVERT-Q00", 13) < 0 && chain_queue("LUADIVERT-Q65536", 16) < 0 &&
	      chain_queue("LUADIVERT-Q", 11) < 0 && chain_queue("LUADIVERT-Q1x", 13) < 0 &&
	      chain_queue("LUADIVERT-Q-1", 13) < 0 && chain_queue("LUADIVERT-Q123456", 17) < 0,
	      "chain_queue: leading zero, too big, empty, junk are not ours");
}

static void test_compile(void)
{
	struct ld_rules_cfg cfg;
	struct ld_rules_prog prog;
	char err[1024], text[4096];

	ld_rules_cfg_init(&cfg, 3);
	check(cfg.hooks == LD_HOOK_DEFAULT && cfg.skip_mark == LD_RULES_SKIP_MARK_DEFAULT &&
	      !cfg.fail_closed && cfg.backend == LD_BACKEND_AUTO, "cfg defaults");
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 &&
	      prog.families == (LD_RULES_V4 | LD_RULES_V6) && !prog.ninsn[0] && !prog.ninsn[1],
	      "no filter: both families, no program");
	cfg.filter = "   ";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 && !prog.ninsn[0],
	      "blank filter = no filter");

	cfg.filter = "udp dst port 9000";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 &&
	      prog.families == (LD_RULES_V4 | LD_RULES_V6), "udp port: both families");
	check(prog.ninsn[0] > 3 && prog.ninsn[0] <= LD_RULES_BPF_MAX &&
	      prog.ninsn[1] > 3 && prog.ninsn[1] <= LD_RULES_BPF_MAX, "udp port: programs sized");
	/* DLT_RAW: both programs start by testing the version nibble */
	check(strncmp(strchr(prog.bytecode[0], ','), ",48 0 0 0,84 0 0 240,21 ", 24) == 0 &&
	      strstr(prog.bytecode[0], " 64,") && strstr(prog.bytecode[1], " 96,"),
	      "programs test the IP version (0x40 / 0x60)");
	check(strtoul(prog.bytecode[0], NULL, 10) == prog.ninsn[0], "bytecode starts with its length");
	check(ld_rules_compile(&cfg, NULL, err, sizeof err) == 0, "validate only (prog NULL)");

	cfg.filter = "icmp6";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 && prog.families == LD_RULES_V6,
	      "icmp6: IPv6 only");
	cfg.filter = "tcp[tcpflags] & tcp-syn != 0";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 && prog.families == LD_RULES_V4,
	      "tcp[] byte test: IPv4 only (libpcap)");
	cfg.family = 6;
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0 && strstr(err, "no IPv6 packet"),
	      "tcp[] with --family 6: error");
	cfg.family = 4;
	cfg.filter = "udp";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 && prog.families == LD_RULES_V4,
	      "--family 4 restricts");
	cfg.family = 5;
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0, "--family 5 rejected");
	cfg.family = 0;
	cfg.hooks = 0x40;
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0, "hook mask beyond the five rejected");
	cfg.hooks = LD_HOOK_OUTPUT;

	cfg.filter = "udp dts port 9";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0 && strstr(err, "syntax error") &&
	      strstr(err, "udp dts port 9") && prog.families == 0, "syntax error: libpcap's message");
	cfg.filter = "ip and ip6";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0 && strstr(err, "matches no packet"),
	      "matches nothing: error");
	cfg.filter = "ether host 1:2:3:4:5:6";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0, "link layer: error");
	cfg.filter = "outbound";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0 && strstr(err, "--hook"),
	      "outbound: error pointing at --hook");
	cfg.filter = "udp port 1 or udp port 2 or udp port 3 or udp port 4 or udp port 5 or "
		     "udp port 6 or udp port 7 or udp port 8 or udp port 9 or udp port 10 or "
		     "udp port 11 or udp port 12 or udp port 13 or udp port 14 or udp port 15 or "
		     "udp port 16 or udp port 17 or udp port 18 or udp port 19 or udp port 20 or "
		     "udp port 21 or udp port 22 or udp port 23 or udp port 24 or udp port 25 or "
		     "udp port 26 or udp port 27 or udp port 28 or udp port 29 or udp port 30";
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) < 0 && strstr(err, "at most 64"),
	      "longer than xt_bpf takes: error");

	cfg.filter = "tcp and port 80";
	cfg.fail_closed = 1;
	cfg.skip_mark = 0;
	cfg.hooks = LD_HOOK_PREROUTING | LD_HOOK_POSTROUTING;
	check(ld_rules_compile(&cfg, &prog, err, sizeof err) == 0 &&
	      ld_rules_render(&cfg, &prog, 4, text, sizeof text) == 0, "render IPv4");
	check(strncmp(text, "*mangle\n:LUADIVERT-Q3 - [0:0]\n-A LUADIVERT-Q3 -m bpf --bytecode \"", 63) == 0,
	      "render: chain, then the bpf rule (no skip rule with skip_mark 0)");
	check(strstr(text, "-j NFQUEUE --queue-num 3\n") != NULL, "render: fail-closed has no bypass");
	check(strstr(text, "\n-A PREROUTING -j LUADIVERT-Q3\n-A POSTROUTING -j LUADIVERT-Q3\nCOMMIT\n") != NULL,
	      "render: one jump per hook, in hook order, then COMMIT");
	cfg.skip_mark = 0x4c440000;
	cfg.fail_closed = 0;
	check(ld_rules_render(&cfg, &prog, 6, text, sizeof text) == 0 &&
	      strstr(text, "-A LUADIVERT-Q3 -m mark --mark 0x4c440000/0x4c440000 -j RETURN\n") &&
	      strstr(text, "--queue-bypass\n"), "render IPv6: skip rule, bypass");
	check(ld_rules_render(&cfg, &prog, 5, text, sizeof text) < 0 &&
	      ld_rules_render(&cfg, &prog, 4, text, 10) < 0, "render: bad family, small buffer");
}

static int nitems[4];
static char lines[16][256];
static int nlines;

static void collect(void *ctx, const char *table, unsigned q, int item, const char *line,
		    size_t len)
{
	(void)ctx;
	(void)len;
	nitems[item]++;
	if (nlines < 16)
		snprintf(lines[nlines++], sizeof lines[0], "%s %u %d %s", table, q, item, line);
}

static const char save_text[] =
	"# Generated by iptables-save\n"
	"*filter\n"
	":INPUT ACCEPT [0:0]\n"
	"-A INPUT -m comment --comment \"x -j LUADIVERT-Q0\" -j ACCEPT\n"
	"COMMIT\n"
	"*mangle\n"
	":PREROUTING ACCEPT [0:0]\n"
	":OUTPUT ACCEPT [0:0]\n"
	":LUADIVERT-Q0 - [0:0]\n"
	":LUADIVERT-Q12 - [0:0]\n"
	":LUADIVERT-Q007 - [0:0]\n"
	"-A PREROUTING -i lo -j LUADIVERT-Q12\n"
	"-A OUTPUT -j LUADIVERT-Q0\n"
	"-A OUTPUT -p udp -g LUADIVERT-Q0\n"
	"-A OUTPUT -j LUADIVERT-Q007\n"
	"-A LUADIVERT-Q0 -m mark --mark 0x4c440000/0x4c440000 -j RETURN\n"
	"-A LUADIVERT-Q0 -j NFQUEUE --queue-num 0 --queue-bypass\n"
	"-A LUADIVERT-Q12 -j NFQUEUE --queue-num 12\n"
	"COMMIT\n";

static int keep_12(void *ctx, unsigned q)
{
	(*(int *)ctx)++;
	return q == 12;
}

static void test_save_text(void)
{
	char *text = strdup(save_text);
	struct removal *r = calloc(1, sizeof *r);
	int asked = 0;

	if (!text || !r) {
		check(0, "allocation");
		return;
	}
	check(walk_save(text, collect, NULL) == 8, "walk: 8 items");
	check(nitems[LD_RULES_ITEM_CHAIN] == 2 && nitems[LD_RULES_ITEM_JUMP] == 3 &&
	      nitems[LD_RULES_ITEM_RULE] == 3, "walk: 2 chains, 3 jumps (-j and -g), 3 rules");
	check(strcmp(lines[2], "mangle 12 2 -A PREROUTING -i lo -j LUADIVERT-Q12") == 0,
	      "walk: a jump with matches, its table and queue");
	check(strcmp(text, save_text) == 0, "walk: the text is left as it was");
	check(rules_has_rules(text) && !rules_has_rules("*mangle\n:INPUT ACCEPT [0:0]\nCOMMIT\n") &&
	      rules_has_rules("*filter\n:MINE - [0:0]\nCOMMIT\n"), "has_rules: rules or user chains");

	r->queue = -1;
	r->keep = keep_12;
	r->keep_ctx = &asked;
	walk_save(text, removal_item, r);
	removal_close_table(r);
	check(r->script.p && strcmp(r->script.p,
		"*mangle\n"
		"-D OUTPUT -j LUADIVERT-Q0\n"
		"-D OUTPUT -p udp -g LUADIVERT-Q0\n"
		"-F LUADIVERT-Q0\n-X LUADIVERT-Q0\n"
		"COMMIT\n") == 0, "removal: jumps deleted as saved, then flush and delete, kept queue 12");
	check(asked == 2 && r->nchains == 1, "removal: keep() asked once per queue");
	sb_free(&r->script);
	sb_free(&r->chains);
	memset(r, 0, sizeof *r);
	r->queue = 5;
	walk_save(text, removal_item, r);
	removal_close_table(r);
	check(r->script.len == 0 && r->nchains == 0, "removal: nothing for another queue");
	sb_free(&r->script);
	sb_free(&r->chains);
	free(r);
	free(text);

	{
		char where[128];

		failing_line("iptables-restore: line 3 failed", "a\nb\nthird line\nd\n", where,
			     sizeof where);
		check(strcmp(where, " [line 3: third line]") == 0, "failing_line quotes the line");
		failing_line("no number", "a\n", where, sizeof where);
		check(where[0] == '\0', "failing_line: nothing when no line number");
	}
}

static void test_exec(void)
{
	struct ld_rules_out out;
	char err[256], path[PATH_BUF];
	char *argv_echo[] = { NULL, "a b;$(id)", "`x`", NULL };
	char *argv_cat[] = { NULL, NULL };
	char *argv_sh[] = { NULL, "-c", "echo to-stderr >&2; exit 3", NULL };
	char big[200000];

	check(ld_rules_find_program("sh", path, sizeof path) == 0 && path[0] == '/', "find sh");
	check(ld_rules_find_program("no-such-program-here", path, sizeof path) < 0,
	      "missing program not found");
	check(ld_rules_find_program("../sh", path, sizeof path) < 0, "names with / refused");

	if (ld_rules_find_program("echo", path, sizeof path) == 0) {
		argv_echo[0] = path;
		check(ld_rules_exec(path, argv_echo, NULL, 0, &out, err, sizeof err) == 0 &&
		      strcmp(out.out, "a b;$(id) `x`\n") == 0 && out.status == 0,
		      "arguments reach the program untouched (no shell)");
		ld_rules_out_free(&out);
	}
	if (ld_rules_find_program("cat", path, sizeof path) == 0) {
		memset(big, 'x', sizeof big);
		argv_cat[0] = path;
		check(ld_rules_exec(path, argv_cat, big, sizeof big, &out, err, sizeof err) == 0 &&
		      out.out_len == sizeof big && out.out[5] == 'x',
		      "200 kB through stdin and stdout, no deadlock");
		ld_rules_out_free(&out);
	}
	if (ld_rules_find_program("sh", path, sizeof path) == 0) {
		argv_sh[0] = path;
		check(ld_rules_exec(path, argv_sh, NULL, 0, &out, err, sizeof err) == 0 &&
		      out.status == 3 && strcmp(out.err, "to-stderr") == 0,
		      "exit status and stderr collected");
		ld_rules_out_free(&out);
	}
	argv_cat[0] = "/nonexistent/prog";
	check(ld_rules_exec("/nonexistent/prog", argv_cat, NULL, 0, &out, err, sizeof err) < 0 &&
	      strstr(err, "cannot run"), "a program that cannot start is an error");
}

static void test_lock(void)
{
	char dir[] = "/tmp/ld-rules-selftest-XXXXXX";
	char err[1024], path[4200];
	int fd, fd2;

	if (!mkdtemp(dir)) {
		check(0, "mkdtemp");
		return;
	}
	setenv("LUADIVERT_RUN_DIR", dir, 1);
	check(ld_rules_lock_path(9, path, sizeof path, 1) == 0 && strncmp(path, dir, strlen(dir)) == 0 &&
	      strstr(path, "-queue-9.lock"), "lock path in $LUADIVERT_RUN_DIR, per queue");
	check(ld_rules_lock_holder(9) == 0, "nobody holds queue 9");
	fd = ld_rules_lock(9, err, sizeof err);
	check(fd >= 0, "lock queue 9");
	check(ld_rules_lock_holder(9) == getpid(), "holder is us");
	fd2 = ld_rules_lock(9, err, sizeof err);
	check(fd2 < 0 && strstr(err, "already in use by luadivert pid"), "second lock refused, with pid");
	fd2 = ld_rules_lock(10, err, sizeof err);
	check(fd2 >= 0, "another queue locks independently");
	ld_rules_unlock(fd2, 10);
	ld_rules_unlock(fd, 9);
	check(access(path, F_OK) < 0 && errno == ENOENT, "unlock deletes the file");
	check(ld_rules_lock_holder(9) == 0, "free again");
	fd = ld_rules_lock(9, err, sizeof err);
	check(fd >= 0, "lock again after unlock");
	ld_rules_unlock(fd, 9);
	ld_rules_unlock(-1, 9);
	setenv("LUADIVERT_RUN_DIR", "/nonexistent/dir/below", 1);
	check(ld_rules_lock(9, err, sizeof err) < 0 && strstr(err, "no usable lock directory"),
	      "unusable $LUADIVERT_RUN_DIR: clear error");
	unsetenv("LUADIVERT_RUN_DIR");
	rmdir(dir);
}

int main(void)
{
	test_options();
	test_compile();
	test_save_text();
	test_exec();
	test_lock();
	printf("%d/%d checks passed\n", total - failed, total);
	return failed ? 1 : 0;
}
