// What the console knows about this tab: the server's config (/ui/config.json), who the key is.
export const session = {config: {auth: false, prices: {}}, keyId: "", owner: "", admin: false};
