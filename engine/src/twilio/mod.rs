//! Twilio Media Streams: the TwiML voice webhook, request signatures and the
//! media WebSocket, feeding the same media port as a SIP call.
