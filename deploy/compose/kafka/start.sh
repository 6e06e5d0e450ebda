#!/bin/bash
# Starts the compose stack's Kafka node: renders server.properties from the mounted one and the container's
# secrets, formats the storage on first start with the SCRAM users "admin" and "broker" (every other user is made
# by the init service through the Admin API), then runs the node in the foreground.
# Secrets (deploy/compose/make_secrets.py): kafka-server.env (ADMIN_PASSWORD, BROKER_PASSWORD, CONTROLLER_PASSWORD),
# kafka-broker.pem and kafka-broker-key.pem (PKCS#8), kafka-ca.pem.
set -euo pipefail

secrets=/run/secrets
# shellcheck source=/dev/null
source "$secrets/kafka-server.env"
: "${ADMIN_PASSWORD:?}" "${BROKER_PASSWORD:?}" "${CONTROLLER_PASSWORD:?}"

# Java properties read "\n" back as a line break: the PEM blocks go on one line each.
one_line() {
    local pem
    pem=$(<"$1")
    printf '%s' "${pem//$'\n'/\\n}"
}

config=/etc/kafka/satubus/server.properties
admin=/etc/kafka/satubus/admin-client.properties
mkdir -p /etc/kafka/satubus
umask 077
{
    cat /etc/kafka/satubus-server.properties
    echo "ssl.keystore.certificate.chain=$(one_line "$secrets/kafka-broker.pem")"
    echo "ssl.keystore.key=$(one_line "$secrets/kafka-broker-key.pem")"
    echo "listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$BROKER_PASSWORD\";"
    echo "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"controller\" password=\"$CONTROLLER_PASSWORD\" user_controller=\"$CONTROLLER_PASSWORD\";"
} > "$config"
# The health check's login (the administrator's), for kafka-broker-api-versions.sh.
cat > "$admin" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka-ca.pem
PROPERTIES

if [ ! -f /var/lib/kafka/data/meta.properties ]; then
    /opt/kafka/bin/kafka-storage.sh format --config "$config" --cluster-id="$(/opt/kafka/bin/kafka-storage.sh random-uuid)" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=broker,password=$BROKER_PASSWORD]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
