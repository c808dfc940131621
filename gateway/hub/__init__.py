"""The gateway on a shared MQTT broker: state topics, commands, and Home Assistant
MQTT discovery, all under the gateway's own base topic."""
