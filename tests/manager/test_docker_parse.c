/* Unit tests of the Docker client's pure parts: engine addresses, the
 * multiplexed log stream and the engine's error replies. No engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_docker.h"

static void test_unix_url_gives_the_socket_path(void **state)
{
    (void)state;
    char path[108];
    cl_err err;
    assert_int_equal(cl_docker_socket_path("unix:///var/run/docker.sock", NULL, path,
                                           sizeof(path), &err),
                     CL_OK);
    assert_string_equal(path, "/var/run/docker.sock");
    assert_int_equal(cl_docker_socket_path("/tmp/e/podman.sock", NULL, path, sizeof(path), &err),
                     CL_OK);
    assert_string_equal(path, "/tmp/e/podman.sock");
}

static void test_tcp_url_is_refused_naming_it_and_its_source(void **state)
{
    (void)state;
    char path[108];
    cl_err err;
    assert_int_equal(cl_docker_socket_path("tcp://10.0.0.1:2375", "DOCKER_HOST", path,
                                           sizeof(path), &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'tcp://10.0.0.1:2375' (from DOCKER_HOST)"));
    assert_non_null(strstr(err.msg, "uses tcp://, which is not supported"));
    assert_non_null(strstr(err.msg, "unix socket"));
    assert_int_equal(cl_docker_socket_path("ssh://me@host", NULL, path, sizeof(path), &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "ssh://"));
}

static void test_relative_or_long_socket_path_is_refused(void **state)
{
    (void)state;
    char path[108];
    cl_err err;
    assert_int_equal(cl_docker_socket_path("unix://run/docker.sock", NULL, path, sizeof(path),
                                           &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "absolute"));
    assert_int_equal(cl_docker_socket_path("docker.sock", NULL, path, sizeof(path), &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'docker.sock'"));
    char url[300] = "unix:///";
    memset(url + 8, 'a', 200);
    url[208] = '\0';
    assert_int_equal(cl_docker_socket_path(url, "--docker-host", path, sizeof(path), &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "too long"));
    assert_non_null(strstr(err.msg, "(from --docker-host)"));
}

/* Appends one frame (stream, payload) to buf at *len. */
static void frame(char *buf, size_t *len, int stream, const char *payload)
{
    size_t n = strlen(payload);
    unsigned char h[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24),
                          (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(buf + *len, h, 8);
    memcpy(buf + *len + 8, payload, n);
    *len += 8 + n;
}

static void test_demux_joins_stdout_and_stderr_frames_in_order(void **state)
{
    (void)state;
    char buf[256];
    size_t len = 0;
    frame(buf, &len, 1, "out one\n");
    frame(buf, &len, 2, "err two\n");
    frame(buf, &len, 1, "");
    frame(buf, &len, 1, "out three\n");
    len = cl_docker_demux(buf, len, false);
    buf[len] = '\0';
    assert_string_equal(buf, "out one\nerr two\nout three\n");
}

static void test_demux_of_a_large_frame_uses_the_whole_length(void **state)
{
    (void)state;
    size_t big = 70000; /* needs the length's upper bytes */
    char *payload = malloc(big + 1);
    memset(payload, 'x', big);
    payload[big] = '\0';
    char *buf = malloc(big + 64);
    size_t len = 0;
    frame(buf, &len, 1, payload);
    frame(buf, &len, 2, "tail");
    len = cl_docker_demux(buf, len, false);
    assert_int_equal(len, big + 4);
    assert_memory_equal(buf + big, "tail", 4);
    assert_int_equal(buf[0], 'x');
    free(payload);
    free(buf);
}

static void test_demux_keeps_a_tty_stream_as_it_is(void **state)
{
    (void)state;
    char buf[64] = "hello from a tty\r\n";
    size_t len = strlen(buf);
    assert_int_equal(cl_docker_demux(buf, len, true), len);
    assert_string_equal(buf, "hello from a tty\r\n");
    /* Not frames although tty was not said: kept too. */
    assert_int_equal(cl_docker_demux(buf, len, false), len);
    assert_string_equal(buf, "hello from a tty\r\n");
}

static void test_demux_keeps_what_came_of_a_frame_cut_short(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    frame(buf, &len, 1, "whole\n");
    frame(buf, &len, 2, "cut short");
    len -= 5; /* "cut " remains */
    len = cl_docker_demux(buf, len, false);
    buf[len] = '\0';
    assert_string_equal(buf, "whole\ncut ");
    /* A header cut short is kept as bytes (nothing is lost or invented). */
    len = 0;
    frame(buf, &len, 1, "a");
    memcpy(buf + len, "\x01\x00\x00", 3);
    len = cl_docker_demux(buf, len + 3, false);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "a\x01\x00\x00", 4);
}

static void test_error_text_takes_the_engines_message(void **state)
{
    (void)state;
    char text[128];
    const char *body = "{\"cause\":\"image not known\",\"message\":\"no such image: x\","
                       "\"response\":404}";
    cl_docker_error_text(body, strlen(body), text, sizeof(text));
    assert_string_equal(text, "no such image: x");
    cl_docker_error_text("page not found\n", 15, text, sizeof(text));
    assert_string_equal(text, "page not found");
    cl_docker_error_text("", 0, text, sizeof(text));
    assert_string_equal(text, "no error text");
    char small[8];
    cl_docker_error_text(body, strlen(body), small, sizeof(small));
    assert_string_equal(small, "no such");
}

static void test_new_refuses_a_tcp_docker_host_from_the_environment(void **state)
{
    (void)state;
    setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
    cl_docker *d = NULL;
    cl_err err;
    assert_int_equal(cl_docker_new(&d, NULL, &err), CL_ERR_INVALID);
    assert_null(d);
    assert_non_null(strstr(err.msg, "(from DOCKER_HOST)"));
    /* An explicit address wins over the environment. */
    assert_int_equal(cl_docker_new(&d, "unix:///tmp/x.sock", &err), CL_OK);
    assert_string_equal(cl_docker_url(d), "unix:///tmp/x.sock");
    cl_docker_free(d);
    unsetenv("DOCKER_HOST");
    assert_int_equal(cl_docker_new(&d, NULL, &err), CL_OK);
    assert_string_equal(cl_docker_url(d), CL_DOCKER_DEFAULT_HOST);
    cl_docker_free(d);
    cl_docker_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_url_gives_the_socket_path),
        cmocka_unit_test(test_tcp_url_is_refused_naming_it_and_its_source),
        cmocka_unit_test(test_relative_or_long_socket_path_is_refused),
        cmocka_unit_test(test_demux_joins_stdout_and_stderr_frames_in_order),
        cmocka_unit_test(test_demux_of_a_large_frame_uses_the_whole_length),
        cmocka_unit_test(test_demux_keeps_a_tty_stream_as_it_is),
        cmocka_unit_test(test_demux_keeps_what_came_of_a_frame_cut_short),
        cmocka_unit_test(test_error_text_takes_the_engines_message),
        cmocka_unit_test(test_new_refuses_a_tcp_docker_host_from_the_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
