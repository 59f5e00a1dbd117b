#!/bin/sh
# rendition-env: the Lambda image's entrypoint wrapper. Fetches, once per cold start, what
# must not be baked into the image or written into the function's environment, then execs
# its arguments (the Rust runtime, which talks to the Lambda Runtime API itself):
#
#   RENDITION_CONFIG_PARAMETER          SSM parameter name (String or SecureString) holding a
#                                       rendition.toml. Written to /tmp/rendition.toml and the
#                                       working directory becomes /tmp, where Rendition's
#                                       loader finds ./rendition.toml. (RENDITION_ENV_DIR
#                                       replaces /tmp, for tests.)
#   RENDITION_SIGNING_KEYS_SECRET_ARN   Secrets Manager secret whose SecretString is a JSON
#                                       array of URL-signing keys (or one key as a plain
#                                       string). Exported to the child only, as
#                                       RENDITION__URLS__SIGNING_KEYS=["k1","k2"].
#
# Neither set: plain exec. A fetch that fails is fatal (the init fails and Lambda retries
# it) rather than starting without the configuration or keys.
#
# Requests are signed by curl (--aws-sigv4) with the function's role credentials from the
# standard AWS_* variables; AWS_ENDPOINT_URL_SSM / AWS_ENDPOINT_URL_SECRETS_MANAGER /
# AWS_ENDPOINT_URL override the endpoints (tests). Credentials go to curl on stdin, never
# on a command line; nothing secret is logged.
#
# Usage: rendition-env /usr/local/bin/rendition-lambda [args...]
set -eu

log() { printf 'rendition-env: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -gt 0 ] || die "usage: rendition-env COMMAND [ARGS...]"

# aws_json SERVICE ENDPOINT TARGET BODY -> response body on stdout
aws_json() {
    service=$1 endpoint=$2 target=$3 body=$4
    : "${AWS_REGION:?AWS_REGION is not set}"
    : "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is not set}"
    : "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is not set}"
    {
        printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
        if [ -n "${AWS_SESSION_TOKEN-}" ]; then
            printf 'header = "x-amz-security-token: %s"\n' "$AWS_SESSION_TOKEN"
        fi
    } | curl --silent --show-error --fail-with-body \
        --connect-timeout 3 --max-time 10 --retry 2 \
        --config - \
        --aws-sigv4 "aws:amz:${AWS_REGION}:${service}" \
        --header "Content-Type: application/x-amz-json-1.1" \
        --header "X-Amz-Target: ${target}" \
        --data-binary "$body" \
        "$endpoint/"
}

if [ -n "${RENDITION_CONFIG_PARAMETER-}" ]; then
    endpoint=${AWS_ENDPOINT_URL_SSM:-${AWS_ENDPOINT_URL:-https://ssm.${AWS_REGION:-}.amazonaws.com}}
    body=$(jq -nc --arg name "$RENDITION_CONFIG_PARAMETER" '{Name: $name, WithDecryption: true}')
    response=$(aws_json ssm "$endpoint" AmazonSSM.GetParameter "$body") ||
        die "cannot read SSM parameter $RENDITION_CONFIG_PARAMETER: $response"
    dir=${RENDITION_ENV_DIR:-/tmp}
    umask 077
    printf '%s\n' "$response" | jq -ej '.Parameter.Value' >"$dir/rendition.toml" ||
        die "SSM parameter $RENDITION_CONFIG_PARAMETER has no value"
    cd "$dir"
    log "configuration from SSM parameter $RENDITION_CONFIG_PARAMETER -> $dir/rendition.toml"
fi

if [ -n "${RENDITION_SIGNING_KEYS_SECRET_ARN-}" ]; then
    endpoint=${AWS_ENDPOINT_URL_SECRETS_MANAGER:-${AWS_ENDPOINT_URL:-https://secretsmanager.${AWS_REGION:-}.amazonaws.com}}
    body=$(jq -nc --arg id "$RENDITION_SIGNING_KEYS_SECRET_ARN" '{SecretId: $id}')
    # The error body of a failed call names the secret, never its value.
    response=$(aws_json secretsmanager "$endpoint" secretsmanager.GetSecretValue "$body") ||
        die "cannot read secret $RENDITION_SIGNING_KEYS_SECRET_ARN: $response"
    # Normalise to a compact JSON array of strings: the syntax RENDITION__ variables use
    # for lists. Quotes and backslashes inside a key would need escaping there: refused.
    keys=$(printf '%s\n' "$response" | jq -ec '
        .SecretString // error("the secret has no SecretString")
        | . as $raw | (try fromjson catch $raw)
        | if type == "string" then [.] else . end
        | if type == "array" and length > 0 and all(.[]; type == "string" and (test("[\"\\\\]") | not))
          then . else error("SecretString must be a JSON array of keys (strings without quotes or backslashes)") end
    ' 2>/dev/null) || die "secret $RENDITION_SIGNING_KEYS_SECRET_ARN: SecretString must be a JSON array of keys, e.g. [\"<key1>\",\"<key2>\"]"
    RENDITION__URLS__SIGNING_KEYS=$keys
    export RENDITION__URLS__SIGNING_KEYS
    unset keys response
    log "URL signing keys from $RENDITION_SIGNING_KEYS_SECRET_ARN"
fi

exec "$@"
