/**
 * protocol/tls-se: Urien's TLS-SE applet (draft-urien-tls-se; ../shared/reference/urien-drafts.md §7,
 * docs/tls-se.md) as card and host code it, after purien/TLS-SE `src/tls_se.java`:
 *
 *   RECV  00 D8 P1 P2 Lc <fragment ≤ 255 (hosts use 240)>   P1 mode; P2 bit 0 first, bit 1 last
 *   SEND  00 C0 00 00 Le                                    (GET RESPONSE) more of the card's output
 *
 * Pure data; imports nothing.
 */

/** The applet AID, as in Urien's tls_se.java / send_apdu.txt. */
export const TLS_SE_AID = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05, 0x00);

export const TlsSeIns = { recv: 0xd8, send: 0xc0, verifyPin: 0x20, setKey: 0x85 } as const;

/** RECV P1. */
export const TlsSeMode = { handshake: 0x00, decrypt: 0x01, encrypt: 0x02, echo: 0xff } as const;

/** RECV P2 bits: first fragment, last fragment (03 = a single fragment). */
export const TlsSeP2 = { first: 0x01, last: 0x02 } as const;

/** VERIFY P2 (raw ASCII PIN): user / admin (the setls card's operator PIN). */
export const TlsSePinRef = { user: 0x00, admin: 0x01 } as const;

/** SET-KEY `00 85 00 0A 23 01 00 20 <32-byte PSK> [identity]`: P2 and the key's tag. */
export const TlsSeSetKey = { p2: 0x0a, keyTag: 0x01 } as const;

export const TlsSeSw = {
  ok: 0x9000,
  /** Java SW_TLS_OPEN */
  sessionOpen: 0x9001,
  sessionClosed: 0x9002,
  /** Java SW_TLS_ERROR */
  tlsError: 0x6d16,
  /** Java SW_ENCRYPT_ERROR */
  encryptError: 0x6d15,
  /** Java SW_ERROR_WRITE: the input overflows the receive buffer, or is not exactly one record */
  writeError: 0x6d02,
  /** `9Fxx`: xx more bytes of this output (Java SW1M) */
  more: 0x9f00,
} as const;

/** Largest output block per APDU (Java MAXRXSIZE); also the RECV fragment hosts send. */
export const TLS_SE_BLOCK = 240;
/** The receive buffer (Java RXSIZE): one RECV input, a record with its 5-byte header, at most this. */
export const TLS_SE_RX_SIZE = 512;
/** The AEAD tag of the applet's suites (AES-128-CCM; the emulated card's GCM/ChaCha suites too). */
export const TLS_SE_TAG_LENGTH = 16;
/**
 * Largest encrypt input (`plaintext ‖ content type`): the record is built in the same buffer, 5-byte
 * header + input + 16-byte tag ≤ 512.
 */
export const TLS_SE_MAX_ENCRYPT_INPUT = TLS_SE_RX_SIZE - 5 - TLS_SE_TAG_LENGTH;
/** The PSK identity used when SET-KEY gives none (openssl s_client's default -psk_identity). */
export const TLS_SE_DEFAULT_PSK_IDENTITY = 'Client_identity';
