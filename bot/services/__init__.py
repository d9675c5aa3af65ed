"""Use-cases, one module each, that the channels and the scheduler call: `answers` decides
and records an answer, whichever way it came; `prompting` and `cycles` ask the leads;
`inbound` reads the mail; `delivery` sends the outbox; `digests` posts the digests;
`alerts` tells the admin. They never import a channel (`handlers`)."""
