DROP TABLE IF EXISTS bridge_vm_intent_aliases;
DROP TABLE IF EXISTS bridge_vm_intents;
